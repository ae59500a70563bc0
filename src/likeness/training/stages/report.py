"""Stage 6: the quality report (training/quality.py). It never fails the training: a report
that cannot be made says why instead."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from likeness.engines.registry import get_engine
from likeness.training import quality
from likeness.training.stages import fit

log = logging.getLogger(__name__)
REPORT = "quality.json"


def run(work_dir: Path, engine_name: str) -> dict[str, object]:
    held_in = work_dir / fit.HELD_IN
    try:
        data = fit.training_input(work_dir)
        split = quality.held_out_split(data.track.n_frames, data.fps)
        if split is None:
            result: dict[str, object] = {"skipped": "the video is too short to hold out 2 s"}
        else:
            model = get_engine(engine_name).load(held_in)
            result = quality.report(data, model, split)
    except Exception as exc:  # the report is a courtesy; the replica is fine without it
        log.warning("quality report failed", exc_info=True)
        result = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        shutil.rmtree(held_in, ignore_errors=True)
    (work_dir / REPORT).write_text(json.dumps(result, indent=2))
    return result


def load(work_dir: Path) -> dict[str, object]:
    path = work_dir / REPORT
    return dict(json.loads(path.read_text())) if path.exists() else {}
