"""The chain's source: an engine session says a whole, known audio, and its frames come out
timed. The audio is known up front, so its phones are too: given by the caller (a script
spoken by the voice, aligned to its words) or recognised, by the phone recogniser the caller
passes, while the frames render; the session gets them first."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

from likeness.engines.base import EngineSession, ReplicaModel
from likeness.kit.handoff import made_in_thread
from likeness.providers.base import Phone, PhoneRecognizer
from likeness.rendering.frames import AudioFrame, VideoFrame, frame_rate

CHUNK_S = 1.0
MARGIN_S = 0.3  # audio held back behind the settled phones
QUEUED_PARTS = 64  # settled phones waiting for the renderer (half a second each)


def frames_for(
    model: ReplicaModel, audio: AudioFrame, phones: list[Phone] | PhoneRecognizer
) -> Iterator[VideoFrame]:
    """Feed the audio a second at a time and yield its frames as they come, so memory stays
    flat however long the audio is. A frame's pts counts frames of 1 / fps from the audio's
    own pts: the engine's frame i shows the instant i / fps of the audio.

    ``phones``: the audio's, or a recogniser that settles them (Whisper's words, heard with
    the GIL released, aligned by PocketSphinx in a child process a pause-bounded stretch at a
    time; PocketSphinx's phone recogniser in a process of its own) while the frames whose
    phones are settled render: the recognition then no longer comes wholly before the first
    frame, and a render uses both cores."""
    clock = _Clock(model.fps, audio)
    session = model.session()
    samples, rate = audio.samples, audio.sample_rate_hz
    if isinstance(phones, list):
        session.push_phones(phones)
        yield from _feed(session, audio, 0, len(samples), clock)
        yield from _end(session, clock)
        return
    recogniser = phones
    known: list[Phone] = []
    fed = 0
    with made_in_thread(
        lambda: recogniser.settle(samples, rate), "phones", QUEUED_PARTS
    ) as recognised:
        for settled in recognised:
            known += settled.phones
            until_s = settled.until_s
            session.push_phones(known)
            # a frame looks one frame ahead, and its audio a little further: stop short
            ready = min(len(samples), int((until_s - MARGIN_S) * rate))
            if until_s * rate >= len(samples):
                ready = len(samples)  # the last phones: all final
            if ready > fed:
                yield from _feed(session, audio, fed, ready, clock)
                fed = ready
    yield from _feed(session, audio, fed, len(samples), clock)
    yield from _end(session, clock)


class _Clock:
    """Engine frame index -> VideoFrame, in the time base 1 / fps."""

    def __init__(self, fps: float, audio: AudioFrame) -> None:
        self.time_base = 1 / frame_rate(fps)
        self.first = round(Fraction(audio.pts, audio.sample_rate_hz) / self.time_base)

    def frames(self, session: EngineSession) -> Iterator[VideoFrame]:
        for frame in session.pull():
            yield VideoFrame(
                frame.picture, self.first + frame.index, self.time_base, frame.speaking
            )


def _feed(
    session: EngineSession, audio: AudioFrame, start: int, stop: int, clock: _Clock
) -> Iterator[VideoFrame]:
    """Push samples[start:stop] a second at a time, yielding the frames as they come."""
    samples, rate = audio.samples, audio.sample_rate_hz
    step = int(rate * CHUNK_S)
    for first in range(start, stop, step):
        session.push_audio(samples[first : min(stop, first + step)], rate)
        yield from clock.frames(session)


def _end(session: EngineSession, clock: _Clock) -> Iterator[VideoFrame]:
    """The frames of the audio's tail."""
    session.end_audio()
    yield from clock.frames(session)
