"""Offline rendering: any engine session + audio → an H.264 + AAC MP4 at the replica's own
resolution and frame rate, with the audio written sample for sample.

The whole audio is known up front, so its phones are too: given by the caller (a script
spoken by the voice, aligned to its words) or recognised here; the session gets them first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from likeness.engines.base import EngineSession, ReplicaModel
from likeness.kit.handoff import made_in_thread
from likeness.media.audio import resample
from likeness.media.video import aac_ready, write_mp4
from likeness.providers import asr_sphinx
from likeness.providers.asr_sphinx import Phone

CHUNK_S = 1.0
MARGIN_S = 0.3  # audio held back behind the settled phones
QUEUED_PARTS = 64  # settled phones waiting for the renderer (half a second each)


def frames_for(
    model: ReplicaModel,
    samples: np.ndarray,
    sample_rate_hz: int,
    phones: list[Phone] | None = None,
) -> Iterator[np.ndarray]:
    """Feed the audio a second at a time and yield (H, W, 3) uint8 frames as they come, so
    memory stays flat however long the audio is.

    Without ``phones``, they are recognised in a process of their own while the frames whose
    phones are settled render: the recognition (0.07x real time on one core) then no longer
    comes before the first frame, and a render uses both cores from its start."""
    session = model.session()
    if phones is not None:
        session.push_phones(phones)
        yield from _feed(session, samples, sample_rate_hz, 0, len(samples))
        yield from _end(session)
        return
    audio16 = resample(samples, sample_rate_hz, asr_sphinx.SAMPLE_RATE_HZ)
    known: list[Phone] = []
    fed = 0
    with made_in_thread(
        lambda: asr_sphinx.recognise_apart(audio16), "phones", QUEUED_PARTS
    ) as recognised:
        for fresh, until_s in recognised:
            known += fresh
            session.push_phones(known)
            # a frame looks one frame ahead, and its audio a little further: stop short
            ready = min(len(samples), int((until_s - MARGIN_S) * sample_rate_hz))
            if until_s * sample_rate_hz >= len(samples):
                ready = len(samples)  # the last phones: all final
            if ready > fed:
                yield from _feed(session, samples, sample_rate_hz, fed, ready)
                fed = ready
    yield from _feed(session, samples, sample_rate_hz, fed, len(samples))
    yield from _end(session)


def _feed(
    session: EngineSession, samples: np.ndarray, sample_rate_hz: int, start: int, stop: int
) -> Iterator[np.ndarray]:
    """Push samples[start:stop] a second at a time, yielding the frames as they come."""
    step = int(sample_rate_hz * CHUNK_S)
    for first in range(start, stop, step):
        session.push_audio(samples[first : min(stop, first + step)], sample_rate_hz)
        for frame in session.pull():
            yield frame.image


def _end(session: EngineSession) -> Iterator[np.ndarray]:
    """The frames of the audio's tail."""
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
