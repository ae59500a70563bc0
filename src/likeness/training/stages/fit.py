"""Stage 6: fit the engine's per-person bundle, and beside it the quality report's held-in
bundle (fitted on the video before the held-out part only), made in one go so they share the
decoding."""

from __future__ import annotations

import dataclasses
import shutil

from likeness.engines.base import HeldIn
from likeness.engines.registry import get_engine
from likeness.media.probe import output_size
from likeness.training import quality
from likeness.training.stage import Context, Progress, Stage

# The quality report renders the held-in bundle no larger than this short side: its measures
# (mouth landmarks in inter-ocular units, 64x64 face boxes) do not need more, and a 4K base
# loop would hold ~4.5 GB while the report renders.
REPORT_SHORT_SIDE_PX = 720


def run(ctx: Context, progress: Progress) -> None:
    work = ctx.work
    data = work.training_input()
    width, height = data.track.width, data.track.height
    wanted = ctx.limits.output_short_side_px
    data = dataclasses.replace(data, output_size=output_size(width, height, wanted))
    report_side = min(wanted or REPORT_SHORT_SIDE_PX, REPORT_SHORT_SIDE_PX)
    for stale in (work.bundle, work.bundle_partial, work.held_in):  # a killed attempt's
        if stale.exists():
            shutil.rmtree(stale)
    window = quality.held_out(data)
    held_in = (
        None
        if window is None
        else HeldIn(window[0], work.held_in, output_size(width, height, report_side))
    )
    get_engine(ctx.engine).fit(data, work.bundle_partial, progress, held_in)
    work.bundle_partial.rename(work.bundle)


STAGE = Stage("fit", 85, run)
