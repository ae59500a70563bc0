"""Phones of live speech, recognised as it streams in, in a child process of its own
(PocketSphinx holds the GIL: a live conversation's clock must not wait on it). One warm child
per conversation serves its utterances one after the other (sphinx_stream.py ``--live``),
settling phones 0.15 s behind the audio instead of the offline 1 s: a child per utterance
and a second of settling would hold a live mouth half a second to a second late."""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
from collections.abc import Callable

import av
import numpy as np

from likeness.providers.base import Phone, SettledPhones
from likeness.providers.sphinx_stream import SAMPLE_RATE_HZ

MAX_QUEUED_PIECES = 4096  # ~200 s of 50 ms pieces: a caller that floods is refused upstream

# (utterance number, phones newly settled, the utterance has no more)
OnPhones = Callable[[int, SettledPhones, bool], None]


class SphinxLivePhones:
    """feed()/finish() utterances in order; what is recognised arrives through ``on_phones``,
    called on a reader thread."""

    def __init__(self, on_phones: OnPhones) -> None:
        self._out = on_phones
        self._child = subprocess.Popen(
            [sys.executable, "-m", "likeness.providers.sphinx_stream", "--live"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._pieces: queue.Queue[bytes | None] = queue.Queue(MAX_QUEUED_PIECES)
        self._next_utt = 0
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE_HZ)
        self._writer = threading.Thread(target=self._write, name="phones-in", daemon=True)
        self._reader = threading.Thread(target=self._read, name="phones-out", daemon=True)
        self._writer.start()
        self._reader.start()

    def begin(self) -> int:
        """The number of the utterance that the next feed() calls belong to."""
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE_HZ)
        return self._next_utt

    def feed(self, samples: np.ndarray, sample_rate_hz: int) -> None:
        """(N,) float32 mono of the current utterance. One resampler per utterance: chunk
        joins stay clean (resampling each chunk alone puts a click at every join, and the
        recogniser hears them)."""
        if len(samples):
            frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate = sample_rate_hz
            self._send(self._resampler.resample(frame))

    def finish(self) -> None:
        """The current utterance is complete: its last phones come with ``final``."""
        self._send(self._resampler.resample(None))
        self._pieces.put((0).to_bytes(4, "little"))
        self._next_utt += 1

    def _send(self, frames: list[av.AudioFrame]) -> None:
        pcm = b"".join(bytes(f.to_ndarray().astype(np.int16).tobytes()) for f in frames)
        if pcm:
            self._pieces.put(len(pcm).to_bytes(4, "little") + pcm)

    def close(self) -> None:
        self._pieces.put(None)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._child.wait(timeout=1.0)
        if self._child.poll() is None:
            self._child.kill()
            self._child.wait()
        self._writer.join(timeout=1.0)
        self._reader.join(timeout=1.0)
        if self._child.stdout is not None:
            self._child.stdout.close()

    def _write(self) -> None:
        stdin = self._child.stdin
        assert stdin is not None
        try:
            while (piece := self._pieces.get()) is not None:
                stdin.write(piece)
                stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # the child is gone: close() reaps it
        with contextlib.suppress(BrokenPipeError, ValueError):
            stdin.close()

    def _read(self) -> None:
        stdout = self._child.stdout
        assert stdout is not None
        finished = 0
        for line in stdout:
            batch = json.loads(line)
            phones = tuple(Phone(*p) for p in batch["phones"])
            self._out(batch["utt"], SettledPhones(phones, batch["until"]), batch["final"])
            if batch["final"]:
                finished = batch["utt"] + 1
        # The child is gone (closed, or crashed): no utterance may wait for phones forever.
        for utt in range(finished, self._next_utt + 1):
            self._out(utt, SettledPhones((), 0.0), True)
