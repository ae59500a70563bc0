"""One video picture, held in the form it was made in: RGB, or the 4:2:0 planes an encoder
takes, or such planes with a small rectangle (a patch) laid over them.

A render changes only the mouth of a base frame that was decoded as 4:2:0 planes. Keeping
that frame as it was decoded, with the mouth's rectangle beside it, means no whole-frame
colour conversion and no whole-frame copy until the encoder's own buffer is filled, and the
pixels outside the patch reach the encoder as the decoded bytes. The other form (RGB for a
matte, a still or a live track) is made on first use and kept. A picture is never changed in
place once made.

Planes use OpenCV's I420 layout: one (H * 3 // 2, W) uint8 array holding the (H, W) luma, then
the (H/2, W/2) U and V planes, each packed row after row; H and W are even."""

from __future__ import annotations

from dataclasses import dataclass

import av
import cv2
import numpy as np


def planes(i420: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of Y (H, W), U (H/2, W/2) and V (H/2, W/2) inside an I420 array."""
    height, width = i420.shape[0] * 2 // 3, i420.shape[1]
    flat = i420.reshape(-1)
    luma = height * width
    u = flat[luma : luma + luma // 4].reshape(height // 2, width // 2)
    v = flat[luma + luma // 4 :].reshape(height // 2, width // 2)
    return i420[:height], u, v


@dataclass(frozen=True)
class Patch:
    """A rectangle of a picture as I420 planes: (h * 3 // 2, w) uint8; its top left corner at
    the even pixel (x, y)."""

    x: int
    y: int
    i420: np.ndarray

    @property
    def width(self) -> int:
        return int(self.i420.shape[1])

    @property
    def height(self) -> int:
        return int(self.i420.shape[0]) * 2 // 3


class Picture:
    """Make one with ``of_rgb`` or ``of_i420``; read it with ``rgb`` or ``i420``."""

    __slots__ = ("_i420", "_patch", "_rgb")

    def __init__(
        self, rgb: np.ndarray | None, i420: np.ndarray | None, patch: Patch | None = None
    ) -> None:
        self._rgb = rgb
        self._i420 = i420
        self._patch = patch

    @classmethod
    def of_rgb(cls, rgb: np.ndarray) -> Picture:
        """rgb: (H, W, 3) uint8 RGB, or (H, W, 4) RGBA."""
        return cls(rgb, None)

    @classmethod
    def of_i420(cls, i420: np.ndarray, patch: Patch | None = None) -> Picture:
        """i420: (H * 3 // 2, W) uint8 planes, shared, not copied (nor ever written); the
        patch, if any, lies over them."""
        return cls(None, i420, patch)

    @property
    def width(self) -> int:
        return int(self._rgb.shape[1] if self._rgb is not None else self._base.shape[1])

    @property
    def height(self) -> int:
        if self._rgb is not None:
            return int(self._rgb.shape[0])
        return int(self._base.shape[0]) * 2 // 3

    @property
    def rgb(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB (or RGBA, if made so): converted once, on first use, by
        OpenCV's BT.601 limited-range conversion (as ``media.video.to_rgb``)."""
        if self._rgb is None:
            self._rgb = cv2.cvtColor(self.i420(), cv2.COLOR_YUV2RGB_I420)
        return self._rgb

    def i420(self) -> np.ndarray:
        """(H * 3 // 2, W) uint8 planes, the patch laid in (a new array, if there is one);
        from RGB, OpenCV's BT.601 conversion, for an even-sized RGB picture only."""
        if self._i420 is None:
            rgb = self.rgb
            if rgb.shape[2] != 3 or rgb.shape[0] % 2 or rgb.shape[1] % 2:
                raise ValueError("only an even-sized RGB picture has I420 planes")
            self._i420 = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), np.uint8)
        if self._patch is None:
            return self._i420
        whole = self._i420.copy()
        _lay(self._patch, planes(whole))
        return whole

    def fill(self, frame: av.VideoFrame) -> None:
        """Write the picture into ``frame``, a yuv420p frame of its size: the planes (RGB is
        converted first), then the patch over them; one copy of each byte."""
        base = self._i420 if self._i420 is not None else self.i420()
        y, u, v = (_plane_view(frame, i) for i in range(3))
        for source, target in zip(planes(base), (y, u, v), strict=True):
            target[...] = source
        if self._patch is not None:
            _lay(self._patch, (y, u, v))

    @property
    def _base(self) -> np.ndarray:
        assert self._i420 is not None
        return self._i420


def _lay(patch: Patch, target: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    x, y, w, h = patch.x, patch.y, patch.width, patch.height
    py, pu, pv = planes(patch.i420)
    target[0][y : y + h, x : x + w] = py
    target[1][y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = pu
    target[2][y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = pv


def _plane_view(frame: av.VideoFrame, index: int) -> np.ndarray:
    """A writable (h, w) view of one of a yuv420p frame's planes (rows may be padded)."""
    plane = frame.planes[index]
    rows: np.ndarray = np.frombuffer(memoryview(plane), np.uint8)  # writable: the frame's own
    return rows.reshape(plane.height, plane.line_size)[:, : plane.width]
