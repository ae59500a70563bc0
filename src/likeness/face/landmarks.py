"""Named MediaPipe FaceMesh indices (478-point topology, iris included) and shape measures."""

from __future__ import annotations

import numpy as np

RIGHT_EYE_OUTER = 33  # the subject's right eye: image left
RIGHT_EYE_INNER = 133
LEFT_EYE_INNER = 362
LEFT_EYE_OUTER = 263
NOSE_TIP = 1
NOSE_BOTTOM = 2
CHIN = 152
UPPER_LIP_INNER = 13
LOWER_LIP_INNER = 14
MOUTH_LEFT = 61
MOUTH_RIGHT = 291
# Inner-lip point pairs (upper, lower): the middle and either side of it.
LIP_GAP_PAIRS = np.array([[13, 14], [82, 87], [312, 317]], dtype=np.int64)
# Lips that touch: an inner-lip gap of at most 2 % of the outer-eye-corner distance (the gap
# FaceMesh reads on pressed lips is ~0-1.5 %; "nearly closed" lips read 2-3 %).
SEALED_GAP = 0.02

# Points that move with the skull but not with the jaw: the similarity transforms that
# normalise pose are fitted on these.
STABLE = np.array([33, 133, 362, 263, 168, 6, 197, 195, 5, 4, 1, 98, 327, 9, 8], dtype=np.int64)

LIPS_OUTER = np.array(
    [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146],
    dtype=np.int64,
)
LIPS_INNER = np.array(
    [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95],
    dtype=np.int64,
)
LIPS = np.concatenate([LIPS_OUTER, LIPS_INNER])

# Face oval, clockwise from the forehead.
FACE_OVAL = np.array(
    [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
     152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109],
    dtype=np.int64,
)  # fmt: skip

# The lower face that the engines replace: from the cheeks under the nose down round the chin.
LOWER_FACE = np.array(
    [205, 36, 142, 126, 217, 174, 196, 419, 399, 437, 355, 371, 266, 425,
     411, 416, 367, 364, 394, 395, 369, 396, 175, 171, 140, 170, 169, 135, 138, 192, 187],
    dtype=np.int64,
)  # fmt: skip


def inter_ocular(points: np.ndarray) -> np.ndarray:
    """points: (..., 478, D), 2-D or 3-D → (...,) distance between the outer eye corners."""
    distance: np.ndarray = np.linalg.norm(
        points[..., LEFT_EYE_OUTER, :] - points[..., RIGHT_EYE_OUTER, :], axis=-1
    )
    return distance


def mouth_opening(points: np.ndarray) -> np.ndarray:
    """Inner-lip gap over the inter-ocular distance: (..., 478, 2) → (...,)."""
    gap = np.linalg.norm(points[..., LOWER_LIP_INNER, :] - points[..., UPPER_LIP_INNER, :], axis=-1)
    ratio: np.ndarray = gap / inter_ocular(points)
    return ratio


def lip_gap(points: np.ndarray) -> np.ndarray:
    """The mean gap of the three inner-lip pairs over the outer-eye-corner distance, in 2-D or
    3-D: (..., 478, D) → (...,). Lips are sealed where it is at most SEALED_GAP."""
    pairs = points[..., LIP_GAP_PAIRS[:, 0], :] - points[..., LIP_GAP_PAIRS[:, 1], :]
    ratio: np.ndarray = np.linalg.norm(pairs, axis=-1).mean(axis=-1) / inter_ocular(points)
    return ratio


def mouth_width(points: np.ndarray) -> np.ndarray:
    """Lip-corner distance over the inter-ocular distance: (..., 478, 2) → (...,)."""
    width = np.linalg.norm(points[..., MOUTH_RIGHT, :] - points[..., MOUTH_LEFT, :], axis=-1)
    ratio: np.ndarray = width / inter_ocular(points)
    return ratio


def yaw_proxy(points: np.ndarray) -> np.ndarray:
    """Nose-tip offset from the eye midpoint, in inter-ocular units (0 = frontal)."""
    mid = (points[..., LEFT_EYE_OUTER, :] + points[..., RIGHT_EYE_OUTER, :]) / 2
    offset: np.ndarray = (points[..., NOSE_TIP, 0] - mid[..., 0]) / inter_ocular(points)
    return offset
