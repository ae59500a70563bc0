"""Offline speech recognition with PocketSphinx (its wheel ships the US-English acoustic
model, language model and dictionary). Used for the spoken-consent check."""

from __future__ import annotations

import numpy as np

from likeness.media.audio import to_int16

SAMPLE_RATE_HZ = 16000


def transcribe(samples: np.ndarray) -> str:
    """(N,) float32 mono at 16 kHz → lower-case words."""
    from pocketsphinx import Decoder

    decoder = Decoder(loglevel="FATAL")
    decoder.start_utt()
    decoder.process_raw(to_int16(samples).tobytes(), full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return str(hypothesis.hypstr) if hypothesis is not None else ""
