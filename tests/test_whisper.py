"""Whisper tiny.en through faster-whisper (providers/asr_whisper.py) on real speech: batch
words with their times, the live stream's partials and finals, and nothing heard in silence
or noise. The model loads once for the whole test process."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import numpy as np
import pytest

from likeness.media.audio import read_audio, resample
from likeness.providers import asr_sphinx, asr_whisper, phones_whisper
from likeness.providers.asr_whisper import WhisperAsr
from likeness.providers.base import Asr, AudioChunk, Phone, PhoneRecognizer, Transcript, Word
from likeness.providers.phones_whisper import WhisperPhones
from likeness.providers.spelling import said, word_error_rate

from .conftest import FIXTURES, live_children

# tests/fixtures/README.md: the Debian pocketsphinx-testdata transcripts of these clips
TRUTH = {
    "librivox_0870.wav": "and mister john dashwood had then leisure to consider how much "
    "there might be prudently in his power to do for them",
    "librivox_0880.wav": "he was not an ill disposed young man",
}
VM_INTRO = "please leave your message after the tone when done hang up or press the pound key"


@pytest.fixture(autouse=True, scope="module")
def _warm() -> None:
    """What start-up does: the first decode is several times slower than the next."""
    asr_whisper.warm()


def _speech(name: str) -> tuple[np.ndarray, int]:
    return read_audio(FIXTURES / name)


async def _live(samples: np.ndarray, rate: int, pace: float) -> AsyncIterator[AudioChunk]:
    """A microphone: 100 ms chunks, each ``pace`` x 100 ms after the last (0: as fast as
    the reader takes them)."""
    step = int(rate * 0.1)
    for start in range(0, len(samples), step):
        yield AudioChunk(samples[start : start + step], rate)
        await asyncio.sleep(0.1 * pace)


def _heard(asr: WhisperAsr, samples: np.ndarray, rate: int, pace: float) -> list[Transcript]:
    async def run() -> list[Transcript]:
        return [t async for t in asr.stream(_live(samples, rate, pace))]

    return asyncio.run(run())


def test_whisper_hears_real_speech_with_its_words_timed() -> None:
    samples, rate = _speech("librivox_0870.wav")
    asr = WhisperAsr()
    assert isinstance(asr, Asr) and isinstance(WhisperPhones(), PhoneRecognizer)
    words = asr_whisper.words(samples, rate)
    heard = asr_whisper.text_of(words)
    error = word_error_rate(TRUTH["librivox_0870.wav"], heard)
    print(f"whisper WER {error:.1%}: {heard!r}")
    assert error <= 0.1
    assert all(w.text == w.text.lower() and w.text.isalpha() for w in words)
    starts = [w.start_s for w in words]
    assert starts == sorted(starts)
    assert all(0 <= w.start_s <= w.end_s <= len(samples) / rate + 0.05 for w in words)
    # at another rate it is resampled; beside the caller's work, the same words
    assert asr.recognise(resample(samples, rate, 44100), 44100) == heard
    with asr.hearing(samples, rate) as wait:
        assert wait() == heard


def test_live_words_come_as_partials_then_a_final_for_each_utterance() -> None:
    """Two sentences with a pause between them, in real time: partials while the first is
    said (each a guess the next replaces), a final for each when its speech stops. (On a
    busy machine a decode can take longer than the short second sentence: it may come as
    its final alone.)"""
    one, rate = _speech("librivox_0870.wav")
    two, _ = _speech("librivox_0880.wav")
    pause = np.zeros(rate, np.float32)
    got = _heard(WhisperAsr(), np.concatenate([one, pause, two, pause]), rate, pace=1.0)
    finals = [t for t in got if t.final]
    assert len(finals) == 2, got
    first_final = got.index(finals[0])
    assert first_final > 0 and not any(t.final for t in got[:first_final])  # partials first
    error = word_error_rate(" ".join(TRUTH.values()), " ".join(t.text for t in finals))
    print(f"live WER {error:.1%}: {[t.text for t in finals]}")
    assert error <= 0.15  # tiny.en hears "ill disposed" as "old supposed" in the second
    assert finals[0].end_s <= len(one) / rate + 0.1 < finals[1].start_s
    assert finals[1].end_s <= (len(one) + len(pause) + len(two)) / rate + 0.1


def test_a_long_utterance_is_closed_at_its_committed_words_and_loses_none() -> None:
    """Unbroken speech longer than max_segment_s: what two decodes agreed on is made final,
    and the rest goes on as the next segment (what bounds a 2-minute monologue's memory)."""
    samples, rate = _speech("librivox_0870.wav")  # 7.1 s without a pause
    got = _heard(WhisperAsr(max_segment_s=3.0), samples, rate, pace=0)
    finals = [t for t in got if t.final]
    assert len(finals) >= 2, got
    together = " ".join(t.text for t in finals)
    error = word_error_rate(TRUTH["librivox_0870.wav"], together)
    print(f"split WER {error:.1%}: {[t.text for t in finals]}")
    assert error <= 0.2
    assert all(a.end_s <= b.start_s + 0.05 for a, b in itertools.pairwise(finals))


@pytest.mark.parametrize("kind", ["silence", "noise"])
def test_silence_and_noise_are_heard_as_nothing(kind: str) -> None:
    """Digital silence; then steady hiss and hum at a speaking level (-26 dBFS): no words,
    not even a final with nothing in it."""
    rate = 16000
    if kind == "silence":
        audio = np.zeros(4 * rate, np.float32)
    else:
        rng = np.random.default_rng(7)
        t = np.arange(4 * rate) / rate
        hum = 0.03 * np.sin(2 * np.pi * 50 * t)
        audio = (0.05 * rng.standard_normal(len(t)) + hum).astype(np.float32)
    assert _heard(WhisperAsr(), audio, rate, pace=0) == []
    assert WhisperAsr().recognise(audio, rate) == ""


def test_said_writes_out_what_whisper_abbreviates() -> None:
    assert " ".join(said("Mr. Dashwood paid $20 in 1990, the 2nd time.")) == (
        "mister dashwood paid dollars twenty in nineteen ninety the second time"
    )
    assert word_error_rate("and mister john", "And Mr. John.") == 0.0
    assert word_error_rate("a b c d", "a x c") == 0.5


def _centres_inside(phones: list[Phone], reference: list[Phone]) -> float:
    """Of the phones that are not silence, the share whose centre falls inside a reference
    phone of the same name."""
    spoken = [p for p in phones if p.name != "SIL"]
    inside = sum(
        any(
            r.name == p.name and r.start_s <= (p.start_s + p.end_s) / 2 < r.end_s for r in reference
        )
        for p in spoken
    )
    return inside / len(spoken)


def test_phones_of_heard_words_are_those_of_the_true_words() -> None:
    """An audio without a script: Whisper's words aligned to phones time them as an alignment
    to the true transcript does; the free phone recogniser (the old way) does not."""
    samples, rate = _speech("librivox_0870.wav")
    speech = resample(samples, rate, asr_sphinx.SAMPLE_RATE_HZ)
    reference = asr_sphinx.align(speech, TRUTH["librivox_0870.wav"])
    settled = list(WhisperPhones().settle(samples, rate))
    phones = [p for s in settled for p in s.phones]
    heard, free = (
        _centres_inside(phones, reference),
        _centres_inside(asr_sphinx.recognise(speech), reference),
    )
    print(f"phone centres inside the true alignment's: heard words {heard:.0%}, free {free:.0%}")
    assert heard >= 0.95 and free < 0.8
    # settled in order, each batch's phones before its until_s, the last at the audio's end
    untils = [s.until_s for s in settled]
    assert untils == sorted(untils) and untils[-1] == pytest.approx(len(speech) / 16000)
    assert all(p.end_s <= s.until_s + 1e-6 for s in settled for p in s.phones)
    assert all(a.end_s == pytest.approx(b.start_s) for a, b in itertools.pairwise(phones))
    # a script's words are aligned as they are written, heard or not
    assert WhisperPhones().phones(samples, rate, TRUTH["librivox_0870.wav"]) == reference


def test_a_word_the_dictionary_lacks_is_pronounced_by_rule_and_aligned() -> None:
    """A woman at 8 kHz; "PBX"-like words are not in PocketSphinx's dictionary: espeak-ng's
    letter-to-sound rules pronounce them, so the stretch is aligned, not recognised freely."""
    assert phones_whisper.pronounce("pbx") == ["P", "IY", "B", "IY", "EH", "K", "S"]
    assert phones_whisper.pronounce("zorblax") == ["Z", "AO", "R", "B", "L", "AE", "K", "S"]
    samples, rate = _speech("allison_vm-intro.wav")
    words = asr_whisper.words(samples, rate)
    error = word_error_rate(VM_INTRO, asr_whisper.text_of(words))
    print(f"whisper WER at 8 kHz {error:.1%}")
    assert error <= 0.1
    assert words[2].text == "your"
    misspelt = [*words[:2], Word("yorr", words[2].start_s, words[2].end_s), *words[3:]]
    speech = resample(samples, rate, 16000)
    decoder = asr_sphinx.word_decoder()
    assert decoder.lookup_word("yorr") is None
    phones = phones_whisper._stretch(speech, decoder, misspelt, 0.0, len(speech) / 16000)
    names = " ".join(p.name for p in phones if p.name != "SIL")
    assert names.startswith("P L IY Z L IY V Y AO R M EH S")  # Please leave yorr mes…


def test_stretches_are_cut_where_the_pause_is_quietest() -> None:
    """Whisper's word ends are loose (here: its gap starts half a second inside the speech):
    the cut between two stretches goes to the quietest 50 ms, not the gap's middle."""
    one, rate = _speech("librivox_0870.wav")
    one = resample(one, rate, 16000)[: int(6.9 * 16000)]  # ends inside "them"
    pause = np.zeros(int(0.3 * 16000), np.float32)
    speech = np.concatenate([one, pause, one])
    end_s = len(one) / 16000
    cut_s = phones_whisper._quietest(speech, end_s - 0.5, end_s + 0.35)
    assert end_s < cut_s < end_s + 0.3


def test_stretches_aligned_in_a_child_process_give_the_same_phones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """settle() aligns each stretch in a child process (PocketSphinx holds the GIL, and the
    frames render beside it): as it goes, its phones are bit for bit those of aligning in
    this thread, all at once. A render that ends well leaves the child for the next; one
    closed early ends it."""
    phones_whisper._end_kept()
    first, rate = _speech("librivox_0870.wav")
    samples = np.concatenate([first, read_audio(FIXTURES / "librivox_0880.wav", rate)[0]])
    here = WhisperPhones(apart=False).phones(samples, rate)

    def no_decoder() -> None:
        raise AssertionError("aligned in this process")

    with monkeypatch.context() as patched:
        patched.setattr(asr_sphinx, "word_decoder", no_decoder)
        settled = list(WhisperPhones().settle(samples, rate))
    assert len(settled) >= 2, "more than one stretch"
    assert [p for s in settled for p in s.phones] == here and len(here) > 60
    kept = live_children(b"phones_whisper")
    assert len(kept) == 1, "the child waits for the next render"
    stopped = WhisperPhones().settle(samples, rate)
    assert next(stopped) == settled[0]
    assert live_children(b"phones_whisper") == kept, "the same child, its second audio"
    stopped.close()  # a render that stops early
    assert not live_children(b"phones_whisper")


def _spoken_part(name: str) -> np.ndarray:
    """A clip at 16 kHz without its trailing quiet (so a pause after it is ours to set)."""
    samples, rate = _speech(name)
    audio = resample(samples, rate, 16000)
    frame = int(asr_whisper.GATE_FRAME_S * 16000)
    rms = np.sqrt(np.mean(np.square(audio[: len(audio) // frame * frame]).reshape(-1, frame), 1))
    return audio[: (int(np.nonzero(rms > 0.02)[0][-1]) + 1) * frame]


def _quiet(seconds: float) -> np.ndarray:
    return (0.0005 * np.random.default_rng(3).standard_normal(int(seconds * 16000))).astype(
        np.float32
    )


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The buffer length of every decode the live stream makes."""
    lengths: list[float] = []
    decode = asr_whisper._Live._decode

    def counted(live: asr_whisper._Live) -> list[Word]:
        lengths.append(live.length_s)
        return decode(live)

    monkeypatch.setattr(asr_whisper._Live, "_decode", counted)
    return lengths


def test_the_final_is_decoded_in_the_pause_before_the_turn_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pause of SPECULATE_S starts the final's decode; when the caller's turn then ends
    (its VAD decided later), the final comes at once, with no decode left to wait for."""
    decodes = _counting(monkeypatch)
    live = asr_whisper._Live(asr_whisper.STEP_S, asr_whisper.MAX_SEGMENT_S)
    live.step([_spoken_part("librivox_0880.wav")], False)
    spoken = len(decodes)
    assert live.step([_quiet(asr_whisper.SPECULATE_S + 0.05)], False) != []
    assert len(decodes) == spoken + 1  # the pause's decode (a partial until the turn ends)
    final = live.step([_quiet(0.3)], True)  # the turn ends
    assert len(decodes) == spoken + 1  # no decode after the end
    assert [t.final for t in final] == [True]
    assert word_error_rate(TRUTH["librivox_0880.wav"], final[0].text) <= 0.3, final


def test_speech_after_the_pause_is_decoded_into_the_final(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Speech coming again after the pause's decode: that decode's words are not the final;
    the final is decoded again and has every word of both."""
    decodes = _counting(monkeypatch)
    live = asr_whisper._Live(asr_whisper.STEP_S, asr_whisper.MAX_SEGMENT_S)
    live.step([_spoken_part("librivox_0880.wav")], False)
    live.step([_quiet(asr_whisper.SPECULATE_S + 0.05)], False)
    spoken = len(decodes)
    final = live.step([_spoken_part("librivox_0870.wav"), _quiet(0.3)], True)
    assert len(decodes) == spoken + 1
    assert [t.final for t in final] == [True]
    truth = TRUTH["librivox_0880.wav"] + " " + TRUTH["librivox_0870.wav"]
    error = word_error_rate(truth, final[0].text)
    print(f"WER {error:.1%}: {final[0].text}")
    assert error <= 0.2
