"""Paste a canonical mouth crop into a base frame: similarity warp of the crop and its mask into
the frame's pose, colour matched on the feather ring, alpha blended.

Only the rectangle the warped crop covers is worked on, and it comes back as a patch to lay
over the base frame's 4:2:0 planes (``media.picture``); the base frame itself is never copied,
changed or converted to RGB. The blend runs on the planes (luma at full size, chroma with the
mask averaged over each 2x2 block), so a pixel the mask does not reach keeps the base's bytes.
The colour match shifts the small canonical crop before it is warped, by the difference
between the base's mean on the frame's feather ring (once per base frame) and the crop's mean
on the canonical ring (the same ring before the similarity warp)."""

from __future__ import annotations

import cv2
import numpy as np

from likeness.media.picture import Patch, planes

RING = (0.02, 0.5)  # the feather ring: mask values strictly between these
MIN_RING_PIXELS = 16  # fewer than this: no colour match
# RGB -> limited-range BT.601 Y, U, V: the numbers OpenCV's RGB -> I420 conversion gives
# (within a level), which media.video's encoder input and media.picture use throughout
BT601 = np.array([[66, 129, 25, 4096], [-38, -74, 112, 32768], [112, -94, -18, 32768]]) / 256


def composite(
    base: np.ndarray,
    to_frame: np.ndarray,
    crop: np.ndarray,
    mask: np.ndarray,
    base_ring: np.ndarray,
) -> Patch | None:
    """base: (H * 3 // 2, W) uint8 I420 planes, H and W even; to_frame: (2, 3) canonical →
    frame; crop: (Hc, Wc, 3) uint8 RGB; mask: (Hc, Wc) float32 in [0, 1]; base_ring: (3,)
    float, the base's RGB mean on the ring (``ring_mean``), NaN for none. Returns the patch
    to lay over ``base``, or None when the crop falls outside the frame."""
    box = _box(base, to_frame, crop.shape)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    shifted = to_frame.copy()
    shifted[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)
    if not np.isnan(base_ring[0]):
        ring = ((mask > RING[0]) & (mask < RING[1])).view(np.uint8)
        if cv2.countNonZero(ring) > MIN_RING_PIXELS:
            shift = np.subtract(base_ring, cv2.mean(crop, mask=ring)[:3])
            crop = cv2.add(crop, (*(float(v) for v in shift), 0.0), dtype=cv2.CV_8U)
    yuv = cv2.transform(crop, BT601)  # (Hc, Wc, 3) uint8 Y, U, V at every pixel
    luma = cv2.warpAffine(
        yuv[:, :, 0], shifted, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    # a chroma sample is the block's top-left pixel's (as OpenCV's RGB -> I420 takes it)
    chroma = cv2.warpAffine(
        yuv[:, :, 1:],
        shifted / 2,
        (size[0] // 2, size[1] // 2),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    alpha = cv2.warpAffine(mask, shifted, size, flags=cv2.INTER_LINEAR, borderValue=0.0)
    alpha_blocks = cv2.resize(alpha, (size[0] // 2, size[1] // 2), interpolation=cv2.INTER_AREA)
    patch = np.empty((size[1] * 3 // 2, size[0]), np.uint8)
    for out, over, under, a in zip(
        planes(patch),
        (luma, chroma[:, :, 0], chroma[:, :, 1]),
        _cut(base, x0, y0, x1, y1),
        (alpha, alpha_blocks, alpha_blocks),
        strict=True,
    ):
        out[...] = cv2.blendLinear(np.ascontiguousarray(over), under, a, 1.0 - a)
    return Patch(x0, y0, patch)


def ring_mean(base: np.ndarray, to_frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(3,) float64: the RGB mean of the base frame (I420 planes) on the mask's feather ring
    warped into it; NaN where the ring is too thin or outside the frame."""
    box = _box(base, to_frame, mask.shape)
    if box is None:
        return np.full(3, np.nan)
    x0, y0, x1, y1 = box
    shifted = to_frame.copy()
    shifted[:, 2] -= (x0, y0)
    alpha = cv2.warpAffine(mask, shifted, (x1 - x0, y1 - y0), borderValue=0.0)
    ring = ((alpha > RING[0]) & (alpha < RING[1])).view(np.uint8)
    if cv2.countNonZero(ring) <= MIN_RING_PIXELS:
        return np.full(3, np.nan)
    under = np.empty(((y1 - y0) * 3 // 2, x1 - x0), np.uint8)
    for target, source in zip(planes(under), _cut(base, x0, y0, x1, y1), strict=True):
        target[...] = source
    rgb = cv2.cvtColor(under, cv2.COLOR_YUV2RGB_I420)
    return np.array(cv2.mean(rgb, mask=ring)[:3])


def _box(
    base: np.ndarray, to_frame: np.ndarray, crop_shape: tuple[int, ...]
) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1): the frame's rectangle the warped crop covers, on whole chroma blocks
    (even corners; H and W are even, so the far edge stays inside); None if under 2 pixels."""
    height, width = base.shape[0] * 2 // 3, base.shape[1]
    hc, wc = crop_shape[:2]
    corners = np.array([[0, 0, 1], [wc, 0, 1], [0, hc, 1], [wc, hc, 1]], np.float32)
    mapped = corners @ to_frame.T
    x0, y0 = np.floor(mapped.min(axis=0)).astype(int)
    x1, y1 = np.ceil(mapped.max(axis=0)).astype(int)
    x0, y0 = max(int(x0), 0) // 2 * 2, max(int(y0), 0) // 2 * 2
    x1, y1 = min(int(x1) + int(x1) % 2, width), min(int(y1) + int(y1) % 2, height)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return x0, y0, x1, y1


def _cut(
    i420: np.ndarray, x0: int, y0: int, x1: int, y1: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the rectangle [x0, x1) x [y0, y1) (even corners) in each of the planes."""
    y, u, v = planes(i420)
    return (
        y[y0:y1, x0:x1],
        u[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2],
        v[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2],
    )
