"""The phones of speech whose words nobody wrote down (an ``audio_url`` render): Whisper
hears the words (asr_whisper), PocketSphinx force-aligns the audio to them (asr_sphinx's
alignment), so the lips follow the dictionary's phones of what was said instead of a free
phone recogniser's guesses (ADR 0006, addendum).

The audio is aligned a stretch at a time, cut in the pauses between Whisper's words: a
stretch is the words between two pauses of at least ``PAUSE_S``, with ``PAD_S`` of audio
either side (Whisper's word times are off by a tenth of a second or two); what lies between
stretches is silence. A word the dictionary lacks ("PBX") is given a pronunciation by
espeak-ng's letter-to-sound rules (in the Piper wheel); a stretch that still cannot be aligned
(Whisper heard words that are not there) gets the free phone recogniser's phones instead.

The alignment runs in a child process (``_Apart``): PocketSphinx holds the GIL, so aligned in
a thread it would stall the frames that render beside it; apart, the stretches align on one
core while the frames whose phones are settled render on the other. The child gets the audio
once and then each stretch's words and bounds, and does what ``_stretch`` does here, so its
phones are the same to the last bit (floats cross as JSON's shortest exact text)."""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import subprocess
import sys
import threading
import unicodedata
from collections.abc import AsyncGenerator, AsyncIterable, Iterator
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from likeness.media.audio import resample
from likeness.providers import asr_sphinx, asr_whisper, piper_phones
from likeness.providers.asr_sphinx import SphinxPhones
from likeness.providers.base import AudioChunk, Phone, PhoneRecognizer, SettledPhones, Word
from likeness.providers.spelling import said

SAMPLE_RATE_HZ = asr_sphinx.SAMPLE_RATE_HZ
PAUSE_S = 0.25  # a gap between words at least this long may cut the audio
PAD_S = 0.4  # audio either side of a stretch's words, for Whisper's loose word times
SILENCE = "SIL"


class WhisperPhones:
    """Phone timings of words heard by Whisper and aligned by PocketSphinx (the
    ``PhoneRecognizer`` port). A script's words are aligned as SphinxPhones aligns them;
    live audio (``stream``) keeps PocketSphinx's phone recogniser, which settles phones
    within a fraction of a second, where Whisper needs the words' end.

    ``apart``: align in a child process (see the module's docstring); False aligns in this
    thread, the same phones."""

    def __init__(self, *, apart: bool = True) -> None:
        self.apart = apart

    def phones(
        self, samples: np.ndarray, sample_rate_hz: int, text: str | None = None
    ) -> list[Phone]:
        if text:
            return asr_sphinx.phones(samples, sample_rate_hz, text)
        return [p for settled in self.settle(samples, sample_rate_hz) for p in settled.phones]

    def settle(self, samples: np.ndarray, sample_rate_hz: int) -> Iterator[SettledPhones]:
        """A stretch's phones as soon as Whisper has heard the words after the pause that
        ends it (Whisper decodes 30 s at a time), and the last ones at the audio's end."""
        audio = resample(np.asarray(samples, np.float32), sample_rate_hz, SAMPLE_RATE_HZ)
        end_s = len(audio) / SAMPLE_RATE_HZ
        done_s = 0.0
        stretch: list[Word] = []
        with (
            _aligner(audio) if self.apart else _Here(audio) as aligner,
            contextlib.closing(asr_whisper.segments(audio, SAMPLE_RATE_HZ)) as heard,
        ):
            for segment in heard:
                for word in segment:
                    if stretch and word.start_s - stretch[-1].end_s >= PAUSE_S:
                        cut_s = _quietest(audio, stretch[-1].end_s, word.start_s)
                        yield SettledPhones(tuple(aligner.align(stretch, done_s, cut_s)), cut_s)
                        done_s, stretch = cut_s, []
                    stretch.append(word)
            phones = aligner.align(stretch, done_s, end_s) if stretch else []
        if not stretch and end_s > done_s:
            phones = [Phone(SILENCE, done_s, end_s)]
        yield SettledPhones(tuple(phones), end_s)

    async def stream(self, audio: AsyncIterable[AudioChunk]) -> AsyncGenerator[SettledPhones, None]:
        async for settled in SphinxPhones().stream(audio):
            yield settled


class _Here:
    """Stretches aligned in this thread (``_stretch``), with one decoder."""

    def __init__(self, audio: np.ndarray) -> None:
        self.audio = audio
        self.decoder: Any = None

    def __enter__(self) -> _Here:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def align(self, words: list[Word], from_s: float, to_s: float) -> list[Phone]:
        if self.decoder is None:
            self.decoder = asr_sphinx.word_decoder()
        return _stretch(self.audio, self.decoder, words, from_s, to_s)


class _Apart:
    """Stretches aligned by ``_Here`` in a child process (``python -m`` this module): an audio
    goes to it as a JSON line with its length and the float32 samples, then each stretch as a
    JSON line; each answer is a JSON line of phones. The child starts, and builds its decoder,
    while Whisper listens. A render that ends well leaves it for the next (``_aligner``): its
    start (~0.35 CPU-s) and decoder (~0.4) are paid once a process; one that fails or stops
    early ends it."""

    def __init__(self) -> None:
        self.child = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.child.stdin and self.child.stdout and self.child.stderr
        self.stdin: IO[bytes] = self.child.stdin
        self.stdout: IO[bytes] = self.child.stdout
        self.errors: list[bytes] = []
        self.stderr = stderr = self.child.stderr
        self.drain = threading.Thread(
            target=lambda: self.errors.append(stderr.read()), name="align-err", daemon=True
        )
        self.drain.start()
        self.sending = threading.Thread()

    def start(self, audio: np.ndarray) -> _Apart:
        samples = np.ascontiguousarray(audio, np.float32)
        # in a thread: the child reads it once it is ready, Whisper meanwhile listens
        self.sending = threading.Thread(
            target=self._send, args=(samples,), name="align-audio", daemon=True
        )
        self.sending.start()
        return self

    def _send(self, samples: np.ndarray) -> None:
        with contextlib.suppress(BrokenPipeError, ValueError):  # the child died: align() says
            self.stdin.write(json.dumps({"samples": len(samples)}).encode() + b"\n")
            self.stdin.write(samples.tobytes())
            self.stdin.flush()

    def __enter__(self) -> _Apart:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is None and self.child.poll() is None:
            self.sending.join()  # no answer is pending: align() waits for each
            _keep(self)
        else:
            self.close()

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError, ValueError):
            self.stdin.close()
        try:
            self.child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.wait()
        if self.sending.is_alive():
            self.sending.join()
        self.drain.join()
        self.stdout.close()
        self.stderr.close()

    def align(self, words: list[Word], from_s: float, to_s: float) -> list[Phone]:
        self.sending.join()
        request = {"words": [[w.text, w.start_s, w.end_s] for w in words], "from": from_s}
        request["to"] = to_s
        try:
            self.stdin.write(json.dumps(request).encode() + b"\n")
            self.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # the answer's absence says so
        answer = self.stdout.readline()
        if not answer:
            self.child.kill()
            self.child.wait()
            self.drain.join()
            detail = b"".join(self.errors).decode(errors="replace").strip()[-500:]
            code = self.child.returncode
            raise RuntimeError(f"aligning the heard words failed ({code}): {detail}")
        return [Phone(*p) for p in json.loads(answer)]


_kept: list[_Apart] = []  # at most one idle child, for the next render
_keeping = threading.Lock()


def _aligner(audio: np.ndarray) -> _Apart:
    """The idle child if there is one (and it lives), else a new one, given ``audio``."""
    with _keeping:
        idle = _kept.pop() if _kept else None
    if idle is not None and idle.child.poll() is not None:
        idle.close()
        idle = None
    return (idle or _Apart()).start(audio)


def _keep(aligner: _Apart) -> None:
    with _keeping:
        if not _kept:
            _kept.append(aligner)
            return
    aligner.close()


@atexit.register
def _end_kept() -> None:
    with _keeping:
        while _kept:
            _kept.pop().close()


def _serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """The child's side of ``_Apart``: audios, each followed by its stretches."""
    decoder = asr_sphinx.word_decoder()  # built while the parent's Whisper listens
    here = _Here(np.zeros(0, np.float32))
    while line := stdin.readline():
        request = json.loads(line)
        if "samples" in request:
            raw = stdin.read(4 * request["samples"])  # all n bytes from a pipe, or EOF
            here = _Here(np.frombuffer(raw, np.float32))
            here.decoder = decoder
            continue
        words = [Word(*w) for w in request["words"]]
        phones = here.align(words, request["from"], request["to"])
        stdout.write(json.dumps([[p.name, p.start_s, p.end_s] for p in phones]).encode() + b"\n")
        stdout.flush()


def _quietest(audio: np.ndarray, from_s: float, to_s: float) -> float:
    """The middle of the quietest 50 ms between two words (Whisper's times for the end of a
    word and the start of the next are loose; the pause itself is where the sound is
    least)."""
    window = int(0.05 * SAMPLE_RATE_HZ)
    first, last = int(from_s * SAMPLE_RATE_HZ), int(to_s * SAMPLE_RATE_HZ)
    gap = np.square(audio[first:last], dtype=np.float64)
    if len(gap) <= window:
        return (from_s + to_s) / 2
    energy = np.convolve(gap, np.ones(window), "valid")
    return (first + int(np.argmin(energy)) + window // 2) / SAMPLE_RATE_HZ


def _stretch(
    audio: np.ndarray, decoder: Any, words: list[Word], from_s: float, to_s: float
) -> list[Phone]:
    """The phones of ``audio`` from ``from_s`` to ``to_s`` (seconds), which holds ``words``:
    silence, then the words' aligned phones, then silence. The words are aligned with PAD_S
    of audio either side, else (a sound beyond them that is not in the text, such as the
    tail of the word before, makes the alignment fail) with PAD_S / 4, else the stretch's
    phones are recognised freely."""
    spoken = [w for word in words for w in said(word.text)]
    for word in spoken:
        _know(decoder, word)
    for pad_s in (PAD_S, PAD_S / 4, None):
        start_s = max(from_s, words[0].start_s - (pad_s or PAD_S))
        stop_s = min(to_s, words[-1].end_s + (pad_s or PAD_S))
        piece = audio[int(start_s * SAMPLE_RATE_HZ) : int(stop_s * SAMPLE_RATE_HZ)]
        if pad_s is None:
            found = asr_sphinx.recognise(piece)
            break
        _, found = asr_sphinx.align_words(piece, " ".join(spoken), decoder)
        if found:
            break
    phones = [Phone(SILENCE, from_s, start_s)] if start_s > from_s else []
    phones += [Phone(p.name, start_s + p.start_s, start_s + p.end_s) for p in found]
    if to_s > stop_s:
        phones.append(Phone(SILENCE, stop_s, to_s))
    return phones


def _know(decoder: Any, word: str) -> None:
    """Give the decoder's dictionary ``word`` if it lacks it, pronounced by espeak-ng's
    letter-to-sound rules (a word it cannot pronounce stays unknown)."""
    if decoder.lookup_word(word) is None:
        phones = pronounce(word)
        if phones:
            decoder.add_word(word, " ".join(phones), True)


_espeak = threading.Lock()  # espeak-ng keeps one state per process


def pronounce(word: str) -> list[str]:
    """CMU phones for a word by espeak-ng's letter-to-sound rules ("pbx" → P IY B IY EH K
    S), its IPA read as piper_phones reads Piper's; [] when it gives none."""
    with _espeak:
        sentences = _phonemizer().phonemize("en-us", word)
    phones: list[str] = []
    previous = ""
    for symbol in unicodedata.normalize("NFC", "".join(c for s in sentences for c in s)):
        pair = piper_phones.PAIRS.get((previous, symbol))
        previous = symbol
        if pair is not None and phones:
            phones[-1] = pair  # a diphthong or affricate: one phone
        elif symbol == "ɹ" and phones[-1:] == ["ER"]:
            continue  # "ɚɹ" is one ER
        elif symbol in piper_phones.IPA_TO_CMU:
            phones.append(piper_phones.IPA_TO_CMU[symbol])
        # stress and length marks, pauses, punctuation: no phone of their own
    return phones


@functools.cache
def _phonemizer() -> Any:
    from piper.phonemize_espeak import EspeakPhonemizer

    return EspeakPhonemizer()


if __name__ == "__main__":
    # the answers get fd 1 to themselves: whatever a library prints goes to stderr
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    _serve(sys.stdin.buffer, answers)

if TYPE_CHECKING:  # conforms to its port: mypy checks every signature here
    _phones: PhoneRecognizer = WhisperPhones()
