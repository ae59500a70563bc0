"""Offline rendering: any engine session + audio → an H.264 + AAC MP4 at the replica's own
resolution and frame rate, with the audio written sample for sample.

The whole audio is known up front, so its phones are too: given by the caller (a script
spoken by the voice, aligned to its words) or recognised here; the session gets them first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from likeness.engines.base import ReplicaModel
from likeness.media.video import aac_ready, write_mp4
from likeness.providers import asr_sphinx
from likeness.providers.asr_sphinx import Phone

CHUNK_S = 1.0


def frames_for(
    model: ReplicaModel,
    samples: np.ndarray,
    sample_rate_hz: int,
    phones: list[Phone] | None = None,
) -> Iterator[np.ndarray]:
    """Feed the audio a second at a time and yield (H, W, 3) uint8 frames as they come, so
    memory stays flat however long the audio is."""
    session = model.session()
    session.push_phones(asr_sphinx.phones(samples, sample_rate_hz) if phones is None else phones)
    step = int(sample_rate_hz * CHUNK_S)
    for start in range(0, len(samples), step):
        session.push_audio(samples[start : start + step], sample_rate_hz)
        for frame in session.pull():
            yield frame.image
    session.end_audio()
    for frame in session.pull():
        yield frame.image


def render_to_mp4(
    model: ReplicaModel,
    samples: np.ndarray,
    sample_rate_hz: int,
    output: Path,
    phones: list[Phone] | None = None,
) -> int:
    """Returns the number of video frames written."""
    samples, sample_rate_hz = aac_ready(samples, sample_rate_hz)
    frames = frames_for(model, samples, sample_rate_hz, phones)
    return write_mp4(output, frames, model.fps, samples, sample_rate_hz)
