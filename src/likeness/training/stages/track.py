"""Stage 4: FaceMesh landmarks (at most MESHED_FRAMES measured, the rest interpolated), plus
the picture measures the checks need and the face cut from each measured frame, in one
decoding pass. A video without a decodable frame ends the training here; how often a face was
found is judged with the other checks."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from itertools import islice

import numpy as np

from likeness.errors import TrainingFailure
from likeness.face.hands import HandWatch
from likeness.face.tracker import FaceCounter, RegionCutter, measured_frames, track
from likeness.media.framestats import FrameStats
from likeness.media.probe import Undecodable
from likeness.media.video import Decoded, iter_decoded
from likeness.training.stage import Context, Progress, Stage
from likeness.training.workspace import frames_at_most

# FaceMesh looks at no more frames than this, spread evenly; the rest are interpolated. The
# fit's mouth bank holds at most as many crops (engines/mouthbank/fit.py MAX_BANK), so a 2-min
# video at 25 fps is measured on every second frame, and anything under 1 min on every frame.
MESHED_FRAMES = 1500
# The trackers and the picture measures look at a copy of at most this many lines: FaceMesh,
# the face and hand detectors cost the same from 640x360 to 1920x1080 (their inputs are
# 128-256 px), while a 4K frame costs ~5 ms more to convert whole. Up to 1080p nothing is
# scaled; the face is cut from the full-resolution picture (RegionCutter).
TRACK_SHORT_SIDE_PX = 1080


def run(ctx: Context, progress: Progress) -> None:
    info = ctx.work.media_info()
    hint = int(info.duration_s * info.fps)
    stats, faces, hands, cutter = FrameStats(), FaceCounter(), HandWatch(), RegionCutter()
    is_measured = measured_frames(hint, MESHED_FRAMES)
    # The full-resolution pictures FaceMesh has yet to see, until it has: a few (its queue).
    waiting: dict[int, Decoded] = {}
    scale = 1.0

    def small_copies() -> Iterator[np.ndarray]:
        nonlocal scale
        decoded = iter_decoded(ctx.work.source, TRACK_SHORT_SIDE_PX)
        for index, picture in enumerate(islice(decoded, frames_at_most(info))):
            scale = picture.scale
            if is_measured(index):
                waiting[index] = picture
            yield picture.small

    def cut(index: int, points: np.ndarray | None) -> None:
        picture = waiting.pop(index, None)
        if points is not None and picture is not None:
            cutter(index, points * picture.scale, picture)

    try:
        result = track(
            small_copies(),
            hint,
            progress,
            observers=[lambda _i, rgb: stats.add(rgb)],
            looks=[faces, hands],
            mesh_at_most=MESHED_FRAMES,
            on_measured=cut,
        )
    except Undecodable as exc:
        raise TrainingFailure("video_damaged", str(exc)) from exc
    finally:
        faces.close()
        hands.close()
    if result.n_frames == 0:
        raise TrainingFailure("video_damaged", "no decodable frames")
    # Everything is kept in the video's own pixels, whatever size the trackers looked at.
    if scale != 1.0:
        result = dataclasses.replace(
            result,
            landmarks=result.landmarks * np.float32(scale),
            width=info.width,
            height=info.height,
        )
    ctx.work.save_track(
        result,
        {
            "luma": stats.luma,
            "change": stats.change,
            "face_frames": np.array(faces.frames, np.int64),
            "face_counts": np.array(faces.counts, np.int64),
            "hand_frames": np.array(hands.frames, np.int64),
            "hand_points": hands.points * np.float32(scale),
        },
    )
    ctx.work.save_regions(cutter.regions())


STAGE = Stage("track", 55, run)
