"""A script spoken by the offline voice, with the timing of every phone it says: the
offline render's whole utterance, from the ``Tts`` port's chunks put end to end."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from likeness.providers.base import Phone, ScriptVoice
from likeness.providers.tts_piper import PiperTts


def speak(text: str, max_duration_s: float | None = None) -> tuple[np.ndarray, int, list[Phone]]:
    """Text → ((N,) float32 mono, sample_rate_hz, phones aligned to the text's words).

    Raises tts_piper.Unspeakable or tts_piper.TooLong (past ``max_duration_s``)."""
    chunks = list(PiperTts().say(text, max_duration_s))
    phones: list[Phone] = []
    offset_s = 0.0
    for chunk in chunks:
        phones += [Phone(p.name, p.start_s + offset_s, p.end_s + offset_s) for p in chunk.phones]
        offset_s += chunk.duration_s
    return np.concatenate([c.samples for c in chunks]), chunks[0].sample_rate_hz, phones


if TYPE_CHECKING:  # the offline render's voice: mypy checks the signature here
    _voice: ScriptVoice = speak
