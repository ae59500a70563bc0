"""The frames a render is made of: frozen, and each with its own time.

A frame wraps its picture without copying it (``media.picture``: an engine's frame stays the
base frame's planes with the mouth laid over until a sink fills its encoder's buffer); a step
that changes the picture makes a new frame with ``with_image`` and keeps the time."""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from likeness.media.picture import Picture


def frame_rate(fps: float) -> Fraction:
    """``fps`` as the exact rate a container stores (29.97 -> 30000/1001)."""
    return Fraction(fps).limit_denominator(1001)


@dataclass(frozen=True)
class VideoFrame:
    """Shown at ``pts * time_base`` seconds from the start of the audio it goes with. ``image``
    is the picture as (H, W, 3) uint8 RGB, or (H, W, 4) uint8 RGBA once matted."""

    picture: Picture
    pts: int
    time_base: Fraction
    speaking: bool = False

    @classmethod
    def of(
        cls, image: np.ndarray, pts: int, time_base: Fraction, speaking: bool = False
    ) -> VideoFrame:
        """A frame of an RGB(A) array."""
        return cls(Picture.of_rgb(image), pts, time_base, speaking)

    @property
    def image(self) -> np.ndarray:
        return self.picture.rgb

    @property
    def time_s(self) -> float:
        return float(self.pts * self.time_base)

    def pts_in(self, time_base: Fraction) -> int:
        """The pts counted in ``time_base`` instead (rounded to the nearest tick)."""
        if time_base == self.time_base:
            return self.pts
        return round(self.pts * self.time_base / time_base)

    def with_image(self, image: np.ndarray) -> VideoFrame:
        return replace(self, picture=Picture.of_rgb(image))


@dataclass(frozen=True)
class AudioFrame:
    """samples: (N,) float32 mono in [-1, 1]; the first one plays at ``pts`` samples (time
    base 1 / sample_rate_hz). An offline render's audio is one frame at pts 0."""

    samples: np.ndarray
    sample_rate_hz: int
    pts: int = 0

    @property
    def time_base(self) -> Fraction:
        return Fraction(1, self.sample_rate_hz)

    @property
    def time_s(self) -> float:
        return self.pts / self.sample_rate_hz

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate_hz
