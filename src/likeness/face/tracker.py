"""Face tracking with MediaPipe FaceMesh (478 points), on every frame of a video.

The model ships inside the pinned ``mediapipe==0.10.14`` wheel and runs offline.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from likeness.kit.handoff import in_thread

N_POINTS = 478
QUEUE_FRAMES = 8  # decoded frames waiting for FaceMesh (720p: 2 MB each)


@dataclass(frozen=True)
class FaceTrack:
    """landmarks: (T, 478, 2) float32 pixels, NaN where no face; present: (T,) bool."""

    landmarks: np.ndarray
    present: np.ndarray
    width: int
    height: int

    @property
    def n_frames(self) -> int:
        return int(self.present.shape[0])

    @property
    def face_share(self) -> float:
        return float(self.present.mean()) if self.n_frames else 0.0


class FaceMeshTracker:
    """Video-mode FaceMesh: tracks between frames, re-detects when the face is lost."""

    def __init__(self, min_detection_confidence: float = 0.5) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")
        import mediapipe as mp  # heavy import: only where tracking happens

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=False,
            max_num_faces=1,
            refine_landmarks=True,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=0.5,
        )

    def __enter__(self) -> FaceMeshTracker:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._mesh.close()

    def landmarks(self, rgb: np.ndarray) -> np.ndarray | None:
        """rgb: (H, W, 3) uint8 → (478, 2) float32 pixels, or None when no face is found."""
        height, width = rgb.shape[:2]
        result = self._mesh.process(rgb)
        if not result.multi_face_landmarks:
            return None
        marks = result.multi_face_landmarks[0].landmark
        points = np.array([(m.x * width, m.y * height) for m in marks], dtype=np.float32)
        return points


def track(
    frames: Iterable[np.ndarray],
    n_frames_hint: int,
    on_progress: Callable[[float], None] | None = None,
    observers: Sequence[Callable[[int, np.ndarray], None]] = (),
) -> FaceTrack:
    """Track a face through ``frames`` ((H, W, 3) uint8 RGB each); every frame is also
    shown to ``observers`` (index, frame), so one decoding pass serves other measures.

    FaceMesh runs in a thread of its own while this one decodes and runs the observers
    (MediaPipe, OpenCV and PyAV let go of the GIL): on 2 cores a 720p frame costs ~10 ms of
    FaceMesh and ~10 ms of decoding, hands and faces, so the two halves overlap evenly
    (measurements in docs/decisions/0007-two-cores.md)."""
    rows: list[np.ndarray] = []
    width = height = 0
    empty = np.full((N_POINTS, 2), np.nan, dtype=np.float32)

    def mesh(images: Iterator[np.ndarray]) -> None:
        with FaceMeshTracker() as tracker:
            for rgb in images:
                points = tracker.landmarks(rgb)
                rows.append(empty if points is None else points)

    with in_thread(mesh, "facemesh", QUEUE_FRAMES) as to_mesh:
        for index, rgb in enumerate(frames):
            height, width = rgb.shape[:2]
            to_mesh(rgb)
            for observe in observers:
                observe(index, rgb)
            if on_progress and n_frames_hint and index % 50 == 0:
                on_progress(min(1.0, index / n_frames_hint))
    landmarks = np.stack(rows) if rows else np.zeros((0, N_POINTS, 2), np.float32)
    present = ~np.isnan(landmarks[:, 0, 0])
    return FaceTrack(landmarks, present, width, height)


class FaceCounter:
    """How many faces MediaPipe's full-range face detector sees, every ``every``-th frame."""

    def __init__(self, every: int = 10, min_confidence: float = 0.6) -> None:
        import mediapipe as mp

        self._detector = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=min_confidence
        )
        self.every = every
        self.frames: list[int] = []
        self.counts: list[int] = []

    def __call__(self, index: int, rgb: np.ndarray) -> None:
        if index % self.every == 0:
            result = self._detector.process(rgb)
            self.frames.append(index)
            self.counts.append(len(result.detections or []))

    def close(self) -> None:
        self._detector.close()
