"""Load a mouthbank bundle once; sessions render from it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from likeness.engines.mouthbank.composite import ring_mean
from likeness.media import probe
from likeness.media.video import iter_i420

if TYPE_CHECKING:
    from likeness.engines.mouthbank.session import MouthbankSession


@dataclass(frozen=True)
class MouthbankModel:
    """Everything a session needs, in memory.

    base_planes: (B, H * 3 // 2, W) uint8, the base loop's frames as I420 planes
    (``media.picture``), at the output size (width x height); base_to_frame: (B, 2, 3)
    canonical → output frame; base_ring: (B, 3) float64, each base frame's RGB mean on the
    mouth's feather ring (the colour match's target; NaN where there is none);
    bank_images: (N, Hc, Wc, 3) uint8 RGB canonical crops; bank_*: (N,) / (N, D) features;
    mask: (Hc, Wc) float32 alpha in canonical space.
    """

    fps: float
    width: int
    height: int
    base_planes: np.ndarray
    base_to_frame: np.ndarray
    base_ring: np.ndarray
    bank_images: np.ndarray
    bank_opening: np.ndarray
    bank_width: np.ndarray
    bank_shape: np.ndarray
    bank_gap: np.ndarray
    mask: np.ndarray
    rel_q: np.ndarray
    tilt_q: np.ndarray
    open_q: np.ndarray
    width_q: np.ndarray
    closed_opening: float
    manifest: dict[str, object]

    def session(self) -> MouthbankSession:
        from likeness.engines.mouthbank.session import MouthbankSession

        return MouthbankSession(self)


def load(bundle_dir: Path, height: int | None = None) -> MouthbankModel:
    """``height``: render at most this many lines, as in "1080p" (the shorter side: a
    portrait video's width); None, or more than the replica has, keeps the training video's
    own size. A smaller size is set here, once: the base loop is decoded straight to it and
    the mouth is warped to it, so a render never holds or encodes the larger frames."""
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    native = (int(manifest["width"]), int(manifest["height"]))
    width, out_height = output_size(native, height)
    arrays = np.load(bundle_dir / "arrays.npz")
    blob = (bundle_dir / "bank.bin").read_bytes()
    offsets = np.asarray(arrays["bank_offsets"])
    bank = np.stack(
        [_decode_jpeg(blob[int(offsets[i]) : int(offsets[i + 1])]) for i in range(len(offsets) - 1)]
    )
    base = _base_loop(
        bundle_dir / "base.mp4", (width, out_height), native, len(arrays["base_to_frame"])
    )
    base_to_frame = _scaled(
        arrays["base_to_frame"][: len(base)], width / native[0], out_height / native[1]
    )
    return MouthbankModel(
        fps=float(manifest["fps"]),
        width=width,
        height=out_height,
        base_planes=base,
        base_to_frame=base_to_frame,
        base_ring=np.array(
            [ring_mean(b, m, arrays["mask"]) for b, m in zip(base, base_to_frame, strict=True)]
        ).reshape(-1, 3),
        bank_images=np.ascontiguousarray(bank),
        bank_opening=arrays["bank_opening"],
        bank_width=arrays["bank_width"],
        bank_shape=arrays["bank_shape"],
        # a bundle fitted before the lip gap was kept: its openings stand in
        bank_gap=arrays["bank_gap"] if "bank_gap" in arrays.files else arrays["bank_opening"],
        mask=arrays["mask"],
        rel_q=arrays["rel_q"],
        tilt_q=arrays["tilt_q"],
        open_q=arrays["open_q"],
        width_q=arrays["width_q"],
        closed_opening=float(arrays["closed_opening"][0]),
        manifest=manifest,
    )


def _base_loop(path: Path, size: tuple[int, int], native: tuple[int, int], most: int) -> np.ndarray:
    """The base loop's first ``most`` frames as (B, H * 3 // 2, W) uint8 I420 planes at
    ``size``, decoded into one array (a list then a stack would hold them twice: 4.5 GB at 4K)."""
    width, height = size
    out = np.empty((most, height * 3 // 2, width), np.uint8)
    count = 0
    for planes in iter_i420(path, None if size == native else size):
        if count == most:
            break
        out[count] = planes
        count += 1
    return out[:count]


def _decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes → (H, W, 3) uint8 RGB."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("a mouth-bank crop is not a readable JPEG")
    rgb: np.ndarray = bgr[:, :, ::-1]
    return rgb


def output_size(native: tuple[int, int], height: int | None) -> tuple[int, int]:
    """(W, H) of a render from a replica of ``native`` (W, H) size at ``height`` lines (the
    shorter side), keeping the aspect, both even; never larger than ``native``: the size
    training stores a replica at too (media/probe.py)."""
    return probe.output_size(native[0], native[1], height)


def _scaled(to_frame: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """(B, 2, 3) canonical -> frame maps, followed by scaling the frame by (sx, sy) about
    pixel centres (as a resize does: x' = sx x + (sx - 1) / 2)."""
    if sx == 1.0 and sy == 1.0:
        return to_frame
    out: np.ndarray = to_frame * np.array([[sx], [sy]])
    out[:, :, 2] += ((sx - 1) / 2, (sy - 1) / 2)  # rows: x, then y
    return out.astype(to_frame.dtype)
