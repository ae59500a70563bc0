"""Pose normalisation: least-squares similarity transforms between landmark sets, and
temporal smoothing of landmark tracks."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src onto dst.

    src: (..., K, 2); dst: (K, 2) or (..., K, 2) → (..., 2, 3) float32 affine matrices.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.broadcast_to(np.asarray(dst, dtype=np.float64), src.shape)
    mu_s = src.mean(axis=-2, keepdims=True)
    mu_d = dst.mean(axis=-2, keepdims=True)
    xs, xd = src - mu_s, dst - mu_d
    norm = (xs**2).sum(axis=(-2, -1))
    a = (xs * xd).sum(axis=(-2, -1)) / norm
    b = (xs[..., 0] * xd[..., 1] - xs[..., 1] * xd[..., 0]).sum(axis=-1) / norm
    rot = np.stack([np.stack([a, -b], -1), np.stack([b, a], -1)], -2)  # (..., 2, 2)
    t = mu_d[..., 0, :] - np.einsum("...ij,...j->...i", rot, mu_s[..., 0, :])
    return np.concatenate([rot, t[..., None]], axis=-1).astype(np.float32)


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """matrix: (..., 2, 3); points: (..., K, 2) → (..., K, 2)."""
    mapped: np.ndarray = np.einsum("...ij,...kj->...ki", matrix[..., :2], points)
    mapped += matrix[..., None, :, 2]
    return mapped


def invert(matrix: np.ndarray) -> np.ndarray:
    """Invert (..., 2, 3) affine matrices."""
    lin = np.linalg.inv(matrix[..., :2].astype(np.float64))
    t = -np.einsum("...ij,...j->...i", lin, matrix[..., 2].astype(np.float64))
    return np.concatenate([lin, t[..., None]], axis=-1).astype(np.float32)


def smooth_track(landmarks: np.ndarray, present: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-smooth (T, P, 2) landmarks over time; gaps are bridged by interpolation for
    the filter and stay NaN in the result."""
    if sigma <= 0 or present.sum() < 2:
        return landmarks.copy()
    t = np.arange(len(present))
    known = np.flatnonzero(present)
    flat = landmarks.reshape(len(present), -1)
    filled = np.empty_like(flat)
    for column in range(flat.shape[1]):
        filled[:, column] = np.interp(t, known, flat[known, column])
    smoothed = gaussian_filter1d(filled, sigma, axis=0, mode="nearest")
    smoothed[~present] = np.nan
    result: np.ndarray = smoothed.reshape(landmarks.shape).astype(np.float32)
    return result
