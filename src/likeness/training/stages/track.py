"""Stage 4: FaceMesh landmarks (at most MESHED_FRAMES measured, the rest interpolated), plus
the picture measures the checks need, in one decoding pass. A video without a decodable frame
ends the training here; how often a face was found is judged with the other checks."""

from __future__ import annotations

from itertools import islice

import numpy as np

from likeness.errors import TrainingFailure
from likeness.face.hands import HandWatch
from likeness.face.tracker import FaceCounter, track
from likeness.media.framestats import FrameStats
from likeness.media.probe import Undecodable
from likeness.media.video import iter_frames
from likeness.training.stage import Context, Progress, Stage
from likeness.training.workspace import frames_at_most

# FaceMesh looks at no more frames than this, spread evenly; the rest are interpolated. The
# fit's mouth bank holds at most as many crops (engines/mouthbank/fit.py MAX_BANK), so a 2-min
# video at 25 fps is measured on every second frame, and anything under 1 min on every frame.
MESHED_FRAMES = 1500


def run(ctx: Context, progress: Progress) -> None:
    info = ctx.work.media_info()
    hint = int(info.duration_s * info.fps)
    stats, faces, hands = FrameStats(), FaceCounter(), HandWatch()
    try:
        result = track(
            islice(iter_frames(ctx.work.source), frames_at_most(info)),
            hint,
            progress,
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
    ctx.work.save_track(
        result,
        {
            "luma": stats.luma,
            "change": stats.change,
            "face_frames": np.array(faces.frames, np.int64),
            "face_counts": np.array(faces.counts, np.int64),
            "hand_frames": np.array(hands.frames, np.int64),
            "hand_points": hands.points,
        },
    )


STAGE = Stage("track", 55, run)
