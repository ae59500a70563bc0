"""Stage 3: FaceMesh landmarks (at most MESHED_FRAMES measured, the rest interpolated), plus
the picture measures the checks need, in one decoding pass; no usable face is a permanent
failure."""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from likeness.errors import TrainingFailure
from likeness.face.hands import HandWatch
from likeness.face.tracker import FaceCounter, FaceTrack, track
from likeness.media.framestats import FrameStats
from likeness.media.probe import Undecodable
from likeness.media.video import iter_frames
from likeness.training.stages import probe
from likeness.training.stages.download import SOURCE

if TYPE_CHECKING:
    from likeness.training.pipeline import Limits

TRACK = "track.npz"
# FaceMesh looks at no more frames than this, spread evenly; the rest are interpolated. The
# fit's mouth bank holds at most as many crops (engines/mouthbank/fit.py MAX_BANK), so a 2-min
# video at 25 fps is measured on every second frame, and anything under 1 min on every frame.
MESHED_FRAMES = 1500


def run(work_dir: Path, limits: Limits, on_progress: Callable[[float], None]) -> FaceTrack:
    info = probe.load(work_dir)
    hint = int(info.duration_s * info.fps)
    stats, faces, hands = FrameStats(), FaceCounter(), HandWatch()
    try:
        result = track(
            islice(iter_frames(work_dir / SOURCE), probe.frames_at_most(info)),
            hint,
            on_progress,
            observers=[lambda _i, rgb: stats.add(rgb)],
            looks=[faces, hands],
            mesh_at_most=MESHED_FRAMES,
        )
    except Undecodable as exc:
        raise TrainingFailure("video_damaged", str(exc)) from exc
    finally:
        faces.close()
        hands.close()
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
        measured=result.measured,
        size=np.array([result.width, result.height]),
        luma=stats.luma,
        change=stats.change,
        face_frames=np.array(faces.frames, np.int64),
        face_counts=np.array(faces.counts, np.int64),
        hand_frames=np.array(hands.frames, np.int64),
        hand_points=hands.points,
    )
    return result


def load(work_dir: Path) -> FaceTrack:
    with np.load(work_dir / TRACK) as data:
        present = data["present"]
        return FaceTrack(
            landmarks=data["landmarks"],
            present=present,
            width=int(data["size"][0]),
            height=int(data["size"][1]),
            # a track saved before frames could go unmeasured measured every one
            measured=data["measured"] if "measured" in data else np.ones_like(present),
        )


MEASURES = ("luma", "change", "face_frames", "face_counts", "hand_frames", "hand_points")


def load_measures(work_dir: Path) -> dict[str, np.ndarray]:
    with np.load(work_dir / TRACK) as data:
        return {k: data[k] for k in MEASURES}
