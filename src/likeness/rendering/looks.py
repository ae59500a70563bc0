"""Optional steps between the engine and the sink: cut the person out of their background
(MediaPipe's selfie segmentation), then either keep the cut as an alpha channel or put the
person over another video."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from likeness.face.segmentation import PersonMatte
from likeness.media.video import loop_frames
from likeness.rendering.frames import VideoFrame


def with_alpha(frames: Iterable[VideoFrame]) -> Iterator[VideoFrame]:
    """RGB frames -> (H, W, 4) uint8 RGBA frames whose alpha is the person's matte."""
    with PersonMatte() as matte:
        for frame in frames:
            alpha = matte.alpha(frame.image)
            opaque = (alpha * 255.0 + 0.5).astype(np.uint8)
            yield frame.with_image(np.dstack([frame.image, opaque]))


def over_background(frames: Iterable[VideoFrame], background: Path) -> Iterator[VideoFrame]:
    """RGB frames -> the person over ``background``, a video scaled to cover the frame,
    centre-cropped and looped for as long as the frames last."""
    backdrop: Iterator[np.ndarray] | None = None
    with PersonMatte() as matte:
        for frame in frames:
            image = frame.image
            if backdrop is None:  # the frames' size is known at the first one
                backdrop = loop_frames(background, (image.shape[1], image.shape[0]))
            a = matte.alpha(image)[:, :, None]
            behind = next(backdrop).astype(np.float32)
            yield frame.with_image((image * a + behind * (1.0 - a) + 0.5).astype(np.uint8))
