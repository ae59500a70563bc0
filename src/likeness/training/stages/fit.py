"""Stage 4: fit the engine's per-person bundle."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from likeness.engines.base import HeldIn, TrainingInput
from likeness.engines.registry import get_engine
from likeness.errors import TrainingFailure
from likeness.media.audio import read_audio
from likeness.media.probe import Undecodable
from likeness.training import quality
from likeness.training.stages import probe, track
from likeness.training.stages.download import SOURCE

BUNDLE = "bundle"
HELD_IN = "held_in"  # the quality report's held-in bundle, removed once the report is made


def training_input(work_dir: Path) -> TrainingInput:
    """What the earlier stages left, as an engine's fit takes it."""
    info = probe.load(work_dir)
    face_track = track.load(work_dir)
    try:
        audio, rate = read_audio(work_dir / SOURCE, 16000, probe.audio_up_to_s(info))
    except Undecodable as exc:
        raise TrainingFailure("audio_processing", str(exc)) from exc
    if audio.size == 0:
        raise TrainingFailure("audio_processing", "the audio stream decodes to nothing")
    return TrainingInput(work_dir / SOURCE, face_track, info.fps, audio, rate)


def run(work_dir: Path, engine_name: str, on_progress: Callable[[float], None]) -> Path:
    """The replica's bundle, and beside it the quality report's held-in bundle (fitted on
    the video before the held-out part only), made in one go so they share the decoding."""
    data = training_input(work_dir)
    out = work_dir / BUNDLE
    partial = work_dir / (BUNDLE + ".partial")
    held_in = work_dir / HELD_IN
    for stale in (out, partial, held_in):  # half-written by a killed attempt
        if stale.exists():
            shutil.rmtree(stale)
    split = quality.held_out_split(data.track.n_frames, data.fps)
    get_engine(engine_name).fit(
        data, partial, on_progress, None if split is None else HeldIn(split, held_in)
    )
    partial.rename(out)
    return out
