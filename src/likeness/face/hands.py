"""Hands near the face, with MediaPipe Hands (palm detector + 21-point hand landmarks; the
models ship inside the pinned ``mediapipe==0.10.14`` wheel and run offline)."""

from __future__ import annotations

import cv2
import numpy as np

MAX_HANDS = 2
N_POINTS = 21


class HandWatch:
    """One of ``tracker.track``'s looks: the landmarks of up to two hands in each frame it is
    shown. ``points`` is (S, 2, 21, 2) float32 pixels, NaN where a hand is absent.

    ~30 ms a call here whatever the frame size (the palm detector looks at 192x192); a look
    every 10th frame (2.5 a second at 25 fps) is plenty for a hand that stays up."""

    def __init__(self, min_confidence: float = 0.5) -> None:
        import mediapipe as mp

        self._hands = mp.solutions.hands.Hands(
            static_image_mode=False,
            max_num_hands=MAX_HANDS,
            model_complexity=0,
            min_detection_confidence=min_confidence,
            min_tracking_confidence=0.5,
        )
        self.frames: list[int] = []
        self._points: list[np.ndarray] = []

    def __call__(self, index: int, rgb: np.ndarray) -> None:
        height, width = rgb.shape[:2]
        found = self._hands.process(rgb).multi_hand_landmarks or []
        points = np.full((MAX_HANDS, N_POINTS, 2), np.nan, np.float32)
        for slot, hand in enumerate(found[:MAX_HANDS]):
            points[slot] = [(p.x * width, p.y * height) for p in hand.landmark]
        self.frames.append(index)
        self._points.append(points)

    @property
    def points(self) -> np.ndarray:
        if not self._points:
            return np.zeros((0, MAX_HANDS, N_POINTS, 2), np.float32)
        return np.stack(self._points)

    def close(self) -> None:
        self._hands.close()


def share_inside(hands: np.ndarray, outline: np.ndarray) -> float:
    """The largest share of one hand's points that lie inside ``outline`` (a polygon, (N, 2)).

    hands: (2, 21, 2) with NaN rows for absent hands."""
    polygon = outline.astype(np.float32).reshape(-1, 1, 2)
    best = 0.0
    for hand in hands:
        if np.isnan(hand).any():
            continue
        inside = [cv2.pointPolygonTest(polygon, (float(x), float(y)), False) >= 0 for x, y in hand]
        best = max(best, float(np.mean(inside)))
    return best
