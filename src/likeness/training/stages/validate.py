"""Stage 4: the upload checks (training/checks.py). A failing check ends the training with
Tavus's message for the first failure in Tavus's order; every result, with where it went
wrong, is kept in ``checks.json`` for the replica's verbose view and `likeness check`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from likeness.engines.mouthbank.features import SAMPLE_RATE_HZ, is_speech, relative_features
from likeness.errors import TrainingFailure
from likeness.media.audio import read_audio
from likeness.media.probe import Undecodable
from likeness.training import checks
from likeness.training.stages import probe, track
from likeness.training.stages.download import SOURCE

if TYPE_CHECKING:
    from likeness.training.pipeline import Limits

CHECKS = "checks.json"


def measure(work_dir: Path) -> checks.Measures:
    info = probe.load(work_dir)
    face_track = track.load(work_dir)
    stats = track.load_measures(work_dir)
    try:
        audio, _ = read_audio(work_dir / SOURCE, SAMPLE_RATE_HZ, probe.audio_up_to_s(info))
    except Undecodable as exc:
        raise TrainingFailure("audio_processing", str(exc)) from exc
    features = relative_features(audio, info.fps)
    return checks.Measures(
        track=face_track,
        fps=info.fps,
        luma=stats["luma"],
        change=stats["change"],
        face_frames=stats["face_frames"],
        face_counts=stats["face_counts"],
        hand_frames=stats["hand_frames"],
        hand_points=stats["hand_points"],
        speech=is_speech(features[:, 0], features[:, 1]),
        energy_db=features[:, 0],
    )


def run(work_dir: Path, limits: Limits) -> list[checks.CheckResult]:
    results = checks.run(measure(work_dir), limits.checks)
    report = checks.as_dicts(results)
    (work_dir / CHECKS).write_text(json.dumps(report, indent=2))
    failed = checks.first_failure(results)
    if failed is not None:
        raise TrainingFailure(failed.check, json.dumps({"checks": report}))
    return results


def load(work_dir: Path) -> list[dict[str, object]]:
    path = work_dir / CHECKS
    return list(json.loads(path.read_text())) if path.exists() else []
