"""A script spoken by the offline voice, with the timing of every phone it says."""

from __future__ import annotations

import numpy as np

from likeness.providers.asr_sphinx import Phone, script_phones
from likeness.providers.tts_piper import synthesize_sentences


def speak(text: str, max_duration_s: float | None = None) -> tuple[np.ndarray, int, list[Phone]]:
    """Text → ((N,) float32 mono, sample_rate_hz, phones aligned to the text's words).

    Raises tts_piper.Unspeakable or tts_piper.TooLong (past ``max_duration_s``)."""
    parts, rate = synthesize_sentences(text, max_duration_s)
    samples = np.concatenate([audio for _, audio in parts])
    return samples, rate, script_phones(parts, rate)
