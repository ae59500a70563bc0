"""Stage 4: fit the engine's per-person bundle."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from likeness.engines.base import TrainingInput
from likeness.engines.registry import get_engine
from likeness.errors import TrainingFailure
from likeness.media.audio import read_audio
from likeness.media.probe import Undecodable
from likeness.training.stages import probe, track
from likeness.training.stages.download import SOURCE

BUNDLE = "bundle"


def training_input(work_dir: Path) -> TrainingInput:
    """What the earlier stages left, as an engine's fit takes it."""
    info = probe.load(work_dir)
    face_track = track.load(work_dir)
    try:
        audio, rate = read_audio(work_dir / SOURCE, 16000)
    except Undecodable as exc:
        raise TrainingFailure("audio_processing", str(exc)) from exc
    if audio.size == 0:
        raise TrainingFailure("audio_processing", "the audio stream decodes to nothing")
    return TrainingInput(work_dir / SOURCE, face_track, info.fps, audio, rate)


def run(work_dir: Path, engine_name: str, on_progress: Callable[[float], None]) -> Path:
    data = training_input(work_dir)
    out = work_dir / BUNDLE
    if out.exists():
        shutil.rmtree(out)  # a half-written bundle from a killed attempt
    partial = work_dir / (BUNDLE + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    get_engine(engine_name).fit(data, partial, on_progress)
    partial.rename(out)
    return out
