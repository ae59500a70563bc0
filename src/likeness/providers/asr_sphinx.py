"""Offline speech recognition with PocketSphinx (its wheel ships the US-English acoustic
model, language models and dictionary): words for the spoken-consent check, and phone
timings (forced alignment when the text is known, phone recognition when it is not) that
tell a renderer when the lips must meet and when they open.

``SphinxAsr`` and ``SphinxPhones`` are these behind the ports of providers/base.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
import threading
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from likeness.media.audio import resample, to_int16
from likeness.providers import sphinx_stream
from likeness.providers.base import (
    Asr,
    AudioChunk,
    Phone,
    PhoneRecognizer,
    SettledPhones,
    Transcript,
    Word,
)

SAMPLE_RATE_HZ = sphinx_stream.SAMPLE_RATE_HZ
FRAME_S = sphinx_stream.FRAME_S


def transcribe(samples: np.ndarray) -> str:
    """(N,) float32 mono at 16 kHz → lower-case words."""
    return sphinx_stream.words(to_int16(samples).tobytes())


@contextlib.contextmanager
def transcribing(samples: np.ndarray) -> Iterator[Callable[[], str]]:
    """``transcribe`` in a child process (PocketSphinx holds the GIL), so that the caller's
    threads work beside it: yields a function that waits for the words. Leaving the block
    ends the child, whether or not its words were waited for."""
    child = subprocess.Popen(
        [sys.executable, "-m", "likeness.providers.sphinx_stream", "--words"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    pcm = to_int16(samples).tobytes()
    replies: list[tuple[bytes, bytes]] = []
    # communicate() writes the PCM and reads the reply; in a thread, so the caller goes on
    talker = threading.Thread(
        target=lambda: replies.append(child.communicate(pcm)), name="words-in", daemon=True
    )
    talker.start()

    def heard() -> str:
        talker.join()
        if child.returncode != 0 or not replies:
            detail = replies[0][1].decode(errors="replace").strip()[-500:] if replies else ""
            raise RuntimeError(f"speech recognition failed ({child.returncode}): {detail}")
        return str(json.loads(replies[0][0])["heard"])

    try:
        yield heard
    finally:
        if child.poll() is None:
            child.kill()
        talker.join()
        child.wait()


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


def align(samples: np.ndarray, text: str) -> list[Phone]:
    """Forced alignment of (N,) 16 kHz speech to ``text``; [] when it cannot be aligned (a
    word outside the dictionary, or speech that does not fit the text)."""
    return align_words(samples, text)[1]


def word_decoder() -> Any:
    """A decoder with the full dictionary. Building one takes 0.2-2.5 s (a busy machine), so a
    caller that aligns sentence after sentence keeps one and passes it to align_words()."""
    from pocketsphinx import Decoder

    return Decoder(loglevel="FATAL")


def in_dictionary(text: str, decoder: Any = None) -> bool:
    """Can ``text`` be aligned at all: it has words, and the dictionary knows every one."""
    decoder = decoder or word_decoder()
    words = re.findall(r"[a-z']+", text.lower())
    return bool(words) and all(decoder.lookup_word(w) is not None for w in words)


def align_words(
    samples: np.ndarray, text: str, decoder: Any = None
) -> tuple[list[Word], list[Phone]]:
    """Forced alignment of (N,) 16 kHz speech to ``text``: its words and its phones, or
    ([], []) when it cannot be aligned. ``decoder``: one from word_decoder() to reuse (a
    sentence then aligns in 0.05-0.1 s instead of 1-3 s)."""
    decoder = decoder or word_decoder()
    if not in_dictionary(text, decoder):
        return [], []
    words = re.findall(r"[a-z']+", text.lower())
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
        return [], []
    if alignment is None:
        return [], []
    said = [
        Word(_spelling(w.name), w.start * FRAME_S, (w.start + w.duration) * FRAME_S)
        for w in alignment
        if not w.name.startswith("<")  # <s>, </s>, <sil>
    ]
    phones = [
        Phone(p.name, p.start * FRAME_S, (p.start + p.duration) * FRAME_S)
        for word in alignment
        for p in word
    ]
    return said, phones


def _spelling(entry: str) -> str:
    """A dictionary entry's word: "the(2)" (its second pronunciation) is "the"."""
    return entry.split("(", 1)[0]


def recognise(samples: np.ndarray) -> list[Phone]:
    """Phone recognition ("allphone" search with the phone language model in the wheel) of
    (N,) 16 kHz speech."""
    decoder = sphinx_stream.phone_decoder()
    decoder.start_utt()
    for piece in _pieces(samples):  # in pieces: the job's heartbeat must run
        decoder.process_raw(piece)
    decoder.end_utt()
    return [Phone(*segment) for segment in sphinx_stream.segments(decoder)]


def recognise_apart(samples: np.ndarray) -> Generator[tuple[list[Phone], float], None, None]:
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


class SphinxAsr:
    """Words heard by PocketSphinx's US-English model (the ``Asr`` port)."""

    def recognise(self, samples: np.ndarray, sample_rate_hz: int) -> str:
        return transcribe(resample(np.asarray(samples, np.float32), sample_rate_hz, SAMPLE_RATE_HZ))

    def hearing(
        self, samples: np.ndarray, sample_rate_hz: int
    ) -> contextlib.AbstractContextManager[Callable[[], str]]:
        """``recognise`` in a child process (``transcribing``)."""
        speech = resample(np.asarray(samples, np.float32), sample_rate_hz, SAMPLE_RATE_HZ)
        return transcribing(speech)

    async def stream(self, audio: AsyncIterable[AudioChunk]) -> AsyncGenerator[Transcript, None]:
        """A partial whenever the best guess changes, one final transcript when the input
        ends (PocketSphinx does not split the stream into segments by itself). Decoding runs
        in a worker thread a piece at a time: PocketSphinx holds the GIL while it decodes, so
        each piece is short."""
        from pocketsphinx import Decoder

        decoder = await asyncio.to_thread(Decoder, loglevel="FATAL")
        decoder.start_utt()
        decoded_s = 0.0
        heard = ""
        async for chunk in audio:
            speech = resample(chunk.samples, chunk.sample_rate_hz, SAMPLE_RATE_HZ)
            for piece in _pieces(speech):
                await asyncio.to_thread(decoder.process_raw, piece)
            decoded_s += len(speech) / SAMPLE_RATE_HZ
            guess = _heard(decoder, decoded_s, final=False)
            if guess is not None and guess.text != heard:
                heard = guess.text
                yield guess
        decoder.end_utt()
        yield _heard(decoder, decoded_s, final=True) or Transcript("", True, 0.0, decoded_s)


def _heard(decoder: Any, decoded_s: float, final: bool) -> Transcript | None:
    hypothesis = decoder.hyp()
    if hypothesis is None or not hypothesis.hypstr:
        return None
    spoken = [s for s in decoder.seg() if not str(s.word).startswith("<")]
    start_s = spoken[0].start_frame * FRAME_S if spoken else 0.0
    end_s = (spoken[-1].end_frame + 1) * FRAME_S if final and spoken else decoded_s
    return Transcript(str(hypothesis.hypstr), final, start_s, end_s)


class SphinxPhones:
    """Phone timings from PocketSphinx (the ``PhoneRecognizer`` port): alignment to the text
    when it is known, phone recognition otherwise, in a child process when it goes along."""

    def phones(
        self, samples: np.ndarray, sample_rate_hz: int, text: str | None = None
    ) -> list[Phone]:
        return phones(samples, sample_rate_hz, text)

    def settle(self, samples: np.ndarray, sample_rate_hz: int) -> Iterator[SettledPhones]:
        speech = resample(np.asarray(samples, np.float32), sample_rate_hz, SAMPLE_RATE_HZ)
        with contextlib.closing(recognise_apart(speech)) as batches:
            for fresh, until_s in batches:
                yield SettledPhones(tuple(fresh), until_s)

    async def stream(self, audio: AsyncIterable[AudioChunk]) -> AsyncGenerator[SettledPhones, None]:
        """The same child process as ``recognise_apart``, fed as the audio arrives. Each
        chunk is resampled on its own: send 16 kHz to have it passed through untouched."""
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "likeness.providers.sphinx_stream",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdin, stdout, stderr = child.stdin, child.stdout, child.stderr
        assert stdin is not None and stdout is not None and stderr is not None

        async def feed() -> None:
            try:
                async for chunk in audio:
                    speech = resample(chunk.samples, chunk.sample_rate_hz, SAMPLE_RATE_HZ)
                    stdin.write(to_int16(speech).tobytes())
                    await stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the child ended early: its exit status says why
            finally:
                stdin.close()

        feeder = asyncio.create_task(feed(), name="phones-in")
        try:
            async for line in stdout:
                batch = json.loads(line)
                yield SettledPhones(
                    tuple(Phone(*p) for p in batch["phones"]), float(batch["until"])
                )
            if await child.wait() != 0:
                detail = (await stderr.read()).decode(errors="replace").strip()[-500:]
                raise RuntimeError(f"phone recognition failed ({child.returncode}): {detail}")
            await feeder  # the input's own error, if any, is raised here
        finally:
            feeder.cancel()
            if child.returncode is None:
                child.kill()
                await child.wait()


if TYPE_CHECKING:  # each conforms to its port: mypy checks every signature here
    _asr: Asr = SphinxAsr()
    _phones: PhoneRecognizer = SphinxPhones()
