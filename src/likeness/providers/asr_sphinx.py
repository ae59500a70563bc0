"""Offline speech recognition with PocketSphinx (its wheel ships the US-English acoustic
model, language models and dictionary): words for the spoken-consent check, and phone
timings (forced alignment when the text is known, phone recognition when it is not) that
tell a renderer when the lips must meet and when they open."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from likeness.media.audio import resample, to_int16
from likeness.providers import sphinx_stream

SAMPLE_RATE_HZ = sphinx_stream.SAMPLE_RATE_HZ
FRAME_S = sphinx_stream.FRAME_S


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
    """Phone recognition ("allphone" search with the phone language model in the wheel) of
    (N,) 16 kHz speech."""
    decoder = sphinx_stream.phone_decoder()
    decoder.start_utt()
    for piece in _pieces(samples):  # in pieces: the job's heartbeat must run
        decoder.process_raw(piece)
    decoder.end_utt()
    return [Phone(*segment) for segment in sphinx_stream.segments(decoder)]


def recognise_apart(samples: np.ndarray) -> Iterator[tuple[list[Phone], float]]:
    """Phone recognition of (N,) 16 kHz speech in a child process (PocketSphinx holds the
    GIL), as it goes: (the phones newly settled, the time in seconds up to which the phones
    are final), and lastly (the rest, the audio's end). See sphinx_stream.py."""
    with subprocess.Popen(
        [sys.executable, "-m", "likeness.providers.sphinx_stream"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as child:
        stdin, stdout, stderr = child.stdin, child.stdout, child.stderr
        assert stdin is not None and stdout is not None and stderr is not None
        errors: list[bytes] = []

        def write() -> None:
            try:
                for piece in _pieces(samples):
                    stdin.write(piece)
                stdin.close()
            except (BrokenPipeError, ValueError):
                pass  # the child ended early: its exit status says why
            errors.append(stderr.read())

        writer = threading.Thread(target=write, name="phones-in", daemon=True)
        writer.start()
        try:
            for line in stdout:
                batch = json.loads(line)
                yield [Phone(*p) for p in batch["phones"]], float(batch["until"])
            if child.wait() != 0:
                writer.join()
                detail = b"".join(errors).decode(errors="replace").strip()[-500:]
                raise RuntimeError(f"phone recognition failed ({child.returncode}): {detail}")
        finally:
            if child.poll() is None:
                child.kill()
            writer.join()
            with contextlib.suppress(BrokenPipeError):
                stdin.close()  # what the killed child never read is dropped


def _pieces(samples: np.ndarray) -> Iterator[bytes]:
    pcm = to_int16(samples).tobytes()
    step = 2 * int(SAMPLE_RATE_HZ * sphinx_stream.PIECE_S)  # bytes: int16
    for start in range(0, len(pcm), step):
        yield pcm[start : start + step]
