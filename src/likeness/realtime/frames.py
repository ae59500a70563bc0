"""What flows through a live conversation: frozen and timed on one clock.

The clock counts video frames: tick ``k`` shows frame ``k`` (pts ``k`` in 1 / fps) and plays
the audio samples from ``round(k * rate / fps)`` (pts in 1 / rate) up to the next tick's, so
picture and voice cannot drift apart whatever the network does."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from likeness.rendering.frames import AudioFrame, VideoFrame

OUTPUT_RATE_HZ = 48000  # Opus's own rate: nothing resamples after us


@dataclass(frozen=True)
class Started:
    """The replica's first frame of utterance ``inference_id`` is out."""

    inference_id: str
    text: str | None


@dataclass(frozen=True)
class Sentence:
    """A sentence of a text utterance starts to be heard; ``text_so_far`` includes it."""

    inference_id: str
    text_so_far: str


@dataclass(frozen=True)
class Stopped:
    """The utterance ended (``interrupted`` when cut short); ``duration_s`` of it was heard."""

    inference_id: str
    duration_s: float
    interrupted: bool
    text: str | None


@dataclass(frozen=True)
class Refused:
    """An utterance was dropped (or cut) before it was all heard; ``message`` says why."""

    inference_id: str
    message: str


SpeakerEvent = Started | Sentence | Stopped | Refused


@dataclass(frozen=True)
class Tick:
    """One step of the clock: a frame, its audio, and what happened at it."""

    index: int
    video: VideoFrame
    audio: AudioFrame
    speaking: bool
    events: tuple[SpeakerEvent, ...] = ()


def audio_span(index: int, fps: float, rate_hz: int = OUTPUT_RATE_HZ) -> tuple[int, int]:
    """The output samples [start, stop) that play under frame ``index``."""
    per_frame = Fraction(rate_hz) / Fraction(fps).limit_denominator(1001)
    return round(index * per_frame), round((index + 1) * per_frame)
