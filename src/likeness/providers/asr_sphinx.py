"""Offline speech recognition with PocketSphinx (its wheel ships the US-English acoustic
model, language models and dictionary): words for the spoken-consent check, and phone
timings (forced alignment when the text is known, phone recognition when it is not) that
tell a renderer when the lips must meet and when they open."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from likeness.media.audio import resample, to_int16

SAMPLE_RATE_HZ = 16000
FRAME_S = 0.01  # PocketSphinx's feature frames
CHUNK_S = 5


@dataclass(frozen=True)
class Phone:
    """One CMU phone ("P", "AA", …; "SIL" for silence), in seconds from the audio's start."""

    name: str
    start_s: float
    end_s: float


def transcribe(samples: np.ndarray) -> str:
    """(N,) float32 mono at 16 kHz → lower-case words."""
    from pocketsphinx import Decoder

    decoder = Decoder(loglevel="FATAL")
    decoder.start_utt()
    decoder.process_raw(to_int16(samples).tobytes(), full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return str(hypothesis.hypstr) if hypothesis is not None else ""


def phones(samples: np.ndarray, sample_rate_hz: int, text: str | None = None) -> list[Phone]:
    """Phone timings for (N,) float32 mono speech: aligned to ``text`` when it is given and
    fits (every word in the dictionary, the speech matching it), else recognised (0.07x real
    time on one core)."""
    audio = resample(np.asarray(samples, np.float32), sample_rate_hz, SAMPLE_RATE_HZ)
    if text:
        aligned = align(audio, text)
        if aligned:
            return aligned
    return recognise(audio)


def script_phones(parts: list[tuple[str, np.ndarray]], sample_rate_hz: int) -> list[Phone]:
    """Phones of speech made sentence by sentence (tts_piper.synthesize_sentences), each
    sentence aligned on its own (long alignments can fail) and put at its place."""
    out: list[Phone] = []
    offset_s = 0.0
    for text, samples in parts:
        for p in phones(samples, sample_rate_hz, text):
            out.append(Phone(p.name, p.start_s + offset_s, p.end_s + offset_s))
        offset_s += len(samples) / sample_rate_hz
    return out


def align(samples: np.ndarray, text: str) -> list[Phone]:
    """Forced alignment of (N,) 16 kHz speech to ``text``; [] when it cannot be aligned (a
    word outside the dictionary, or speech that does not fit the text)."""
    from pocketsphinx import Decoder

    decoder = Decoder(loglevel="FATAL")
    words = re.findall(r"[a-z']+", text.lower())
    if not words or any(decoder.lookup_word(w) is None for w in words):
        return []
    pcm = to_int16(samples).tobytes()
    try:
        decoder.set_align_text(" ".join(words))
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        decoder.set_alignment()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        alignment = decoder.get_alignment()
    except (RuntimeError, ValueError):
        return []
    if alignment is None:
        return []
    return [
        Phone(p.name, p.start * FRAME_S, (p.start + p.duration) * FRAME_S)
        for word in alignment
        for p in word
    ]


def recognise(samples: np.ndarray) -> list[Phone]:
    """Phone recognition ("allphone" search with the phone language model in the wheel)."""
    from pocketsphinx import Decoder, get_model_path

    decoder = Decoder(
        loglevel="FATAL",
        allphone=os.path.join(get_model_path(), "en-us", "en-us-phone.lm.bin"),
        lm=None,
        lw=2.0,
        beam=1e-20,
        pbeam=1e-20,
    )
    pcm = to_int16(samples).tobytes()
    step = 2 * SAMPLE_RATE_HZ * CHUNK_S  # bytes: int16
    decoder.start_utt()
    for start in range(0, len(pcm), step):  # in pieces: PocketSphinx holds the GIL per call,
        decoder.process_raw(pcm[start : start + step])  # and the job's heartbeat must run
    decoder.end_utt()
    return [
        Phone(s.word, s.start_frame * FRAME_S, (s.end_frame + 1) * FRAME_S) for s in decoder.seg()
    ]
