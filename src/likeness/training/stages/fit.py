"""Stage 6: fit the engine's per-person bundle, and beside it the quality report's held-in
bundle (fitted on the video before the held-out part only), made in one go so they share the
decoding."""

from __future__ import annotations

import shutil

from likeness.engines.base import HeldIn
from likeness.engines.registry import get_engine
from likeness.training import quality
from likeness.training.stage import Context, Progress, Stage


def run(ctx: Context, progress: Progress) -> None:
    work = ctx.work
    data = work.training_input()
    for stale in (work.bundle, work.bundle_partial, work.held_in):  # a killed attempt's
        if stale.exists():
            shutil.rmtree(stale)
    split = quality.held_out_split(data.track.n_frames, data.fps)
    get_engine(ctx.engine).fit(
        data, work.bundle_partial, progress, None if split is None else HeldIn(split, work.held_in)
    )
    work.bundle_partial.rename(work.bundle)


STAGE = Stage("fit", 85, run)
