"""Stage 7: the quality report (training/quality.py). It never fails the training: a report
that cannot be made says why instead."""

from __future__ import annotations

import logging
import shutil

from likeness.engines.registry import get_engine
from likeness.training import quality
from likeness.training.stage import Context, Progress, Stage

log = logging.getLogger(__name__)


def run(ctx: Context, _progress: Progress) -> None:
    work = ctx.work
    try:
        data = work.training_input()
        window = quality.held_out(data)
        if window is None:
            result: dict[str, object] = {"skipped": "the video is too short to hold out 2 s"}
        else:
            model = get_engine(ctx.engine).load(work.held_in)
            result = quality.report(data, model, window, ctx.phones)
    except Exception as exc:  # the report is a courtesy; the replica is fine without it
        log.warning("quality report failed", exc_info=True)
        result = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        shutil.rmtree(work.held_in, ignore_errors=True)
    work.save_quality(result)


STAGE = Stage("report", 95, run)
