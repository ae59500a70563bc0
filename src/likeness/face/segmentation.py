"""Person segmentation with MediaPipe's selfie-segmentation model (shipped in the pinned
mediapipe wheel), smoothed over time so the matte does not flicker."""

from __future__ import annotations

import os

import numpy as np


class PersonMatte:
    """Per frame: (H, W, 3) uint8 RGB → (H, W) float32 alpha of the person in [0, 1]."""

    def __init__(self, smoothing: float = 0.5) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")
        import mediapipe as mp

        self._model = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=1)
        self._smoothing = smoothing
        self._previous: np.ndarray | None = None

    def __enter__(self) -> PersonMatte:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._model.close()

    def alpha(self, rgb: np.ndarray) -> np.ndarray:
        mask = np.asarray(self._model.process(rgb).segmentation_mask, np.float32)
        if self._previous is not None and self._previous.shape == mask.shape:
            mask = self._smoothing * self._previous + (1.0 - self._smoothing) * mask
        self._previous = mask
        return mask
