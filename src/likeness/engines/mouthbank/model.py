"""Load a mouthbank bundle once; sessions render from it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from likeness.media.video import iter_frames

if TYPE_CHECKING:
    from likeness.engines.mouthbank.session import MouthbankSession


@dataclass(frozen=True)
class MouthbankModel:
    """Everything a session needs, in memory.

    base_images: (B, H, W, 3) uint8 RGB; base_to_frame: (B, 2, 3) canonical → frame;
    bank_images: (N, Hc, Wc, 3) uint8 RGB canonical crops; bank_*: (N,) / (N, D) features;
    mask: (Hc, Wc) float32 alpha in canonical space.
    """

    fps: float
    width: int
    height: int
    base_images: np.ndarray
    base_to_frame: np.ndarray
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


def load(bundle_dir: Path) -> MouthbankModel:
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    arrays = np.load(bundle_dir / "arrays.npz")
    blob = (bundle_dir / "bank.bin").read_bytes()
    offsets = np.asarray(arrays["bank_offsets"])
    bank = np.stack(
        [_decode_jpeg(blob[int(offsets[i]) : int(offsets[i + 1])]) for i in range(len(offsets) - 1)]
    )
    base = np.stack(list(iter_frames(bundle_dir / "base.mp4")))
    base_to_frame = arrays["base_to_frame"][: len(base)]
    return MouthbankModel(
        fps=float(manifest["fps"]),
        width=int(manifest["width"]),
        height=int(manifest["height"]),
        base_images=base,
        base_to_frame=base_to_frame,
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


def _decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes → (H, W, 3) uint8 RGB."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("a mouth-bank crop is not a readable JPEG")
    rgb: np.ndarray = bgr[:, :, ::-1]
    return rgb
