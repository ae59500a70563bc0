"""Paste a canonical mouth crop into a frame: similarity warp of the crop and its mask into the
frame's pose, colour matched on the feather ring, alpha blended. Only the ROI is touched."""

from __future__ import annotations

import cv2
import numpy as np


def composite(
    base: np.ndarray, to_frame: np.ndarray, crop: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """base: (H, W, 3) uint8; to_frame: (2, 3) canonical → frame; crop: (Hc, Wc, 3) uint8;
    mask: (Hc, Wc) float32 in [0, 1]. Returns a new (H, W, 3) uint8 frame."""
    height, width = base.shape[:2]
    hc, wc = crop.shape[:2]
    corners = np.array([[0, 0, 1], [wc, 0, 1], [0, hc, 1], [wc, hc, 1]], np.float32)
    mapped = corners @ to_frame.T
    x0, y0 = np.floor(mapped.min(axis=0)).astype(int)
    x1, y1 = np.ceil(mapped.max(axis=0)).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    out = base.copy()
    if x1 - x0 < 2 or y1 - y0 < 2:
        return out
    shifted = to_frame.copy()
    shifted[:, 2] -= (x0, y0)
    size = (int(x1 - x0), int(y1 - y0))
    warped = cv2.warpAffine(
        crop, shifted, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    alpha = cv2.warpAffine(mask, shifted, size, flags=cv2.INTER_LINEAR, borderValue=0.0)
    roi = out[y0:y1, x0:x1]
    ring = ((alpha > 0.02) & (alpha < 0.5)).view(np.uint8)
    if cv2.countNonZero(ring) > 16:
        shift = np.subtract(cv2.mean(roi, mask=ring), cv2.mean(warped, mask=ring))
        warped = cv2.add(warped, tuple(float(v) for v in shift), dtype=cv2.CV_8U)
    roi[...] = cv2.blendLinear(warped, roi, alpha, 1.0 - alpha)
    return out
