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
from likeness.providers import asr_sphinx
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
    chunks: list[SpeechChunk] = _run(lambda: _all(PiperTts().speak(text)))
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
