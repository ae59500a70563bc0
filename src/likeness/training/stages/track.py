"""Stage 3: FaceMesh landmarks on every frame; no usable face is a permanent failure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from likeness.errors import TrainingFailure
from likeness.face.tracker import FaceTrack, track
from likeness.media.probe import Undecodable
from likeness.media.video import iter_frames
from likeness.training.stages import probe
from likeness.training.stages.download import SOURCE

if TYPE_CHECKING:
    from likeness.training.pipeline import Limits

TRACK = "track.npz"


def run(work_dir: Path, limits: Limits, on_progress: Callable[[float], None]) -> FaceTrack:
    info = probe.load(work_dir)
    hint = int(info.duration_s * info.fps)
    try:
        result = track(iter_frames(work_dir / SOURCE), hint, on_progress)
    except Undecodable as exc:
        raise TrainingFailure("video_damaged", str(exc)) from exc
    if result.n_frames == 0:
        raise TrainingFailure("video_damaged", "no decodable frames")
    if result.face_share < limits.min_face_share:
        raise TrainingFailure(
            "face_not_detected",
            f"a face was found in {result.face_share:.0%} of frames "
            f"(at least {limits.min_face_share:.0%} needed)",
        )
    np.savez_compressed(
        work_dir / TRACK,
        landmarks=result.landmarks,
        present=result.present,
        size=np.array([result.width, result.height]),
    )
    return result


def load(work_dir: Path) -> FaceTrack:
    with np.load(work_dir / TRACK) as data:
        return FaceTrack(
            landmarks=data["landmarks"],
            present=data["present"],
            width=int(data["size"][0]),
            height=int(data["size"][1]),
        )
