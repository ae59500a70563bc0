"""A conversation's ears: the participant's microphone → 16 kHz → VAD → streaming ASR → what
the person said, one turn at a time.

Runs on the conversation's event loop and only routes: the VAD costs ~0.1 ms per 32 ms frame,
the recogniser runs off the loop (its provider's threads or child process). Audio waits in
bounded queues: a loop that falls behind drops the oldest microphone audio (counted), never
grows memory.

A turn opens when the VAD decides that speech started (after ``start_s`` of it: a cough or a
click opens nothing) and closes when it decides that speech stopped (after ``stop_s`` of
silence: the pause sensitivity). The recogniser hears the turn from a little before its start
(``PREROLL_S``: the VAD decides late) to its stop; a turn whose words come back empty is
dropped without a word, so silence and noise never become a turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import av
import numpy as np

from likeness.providers.base import Asr, AudioChunk, Vad

log = logging.getLogger(__name__)

RATE_HZ = 16000
PREROLL_S = 0.4  # heard before the VAD's start (it decides start_s late, and words ramp up)
MAX_QUEUED_CHUNKS = 250  # ~5 s of 20 ms microphone frames
MAX_TURN_S = 60.0  # a monologue is cut into turns this long (the recogniser's window)


@dataclass(frozen=True)
class UserStarted:
    at: float  # monotonic time the speech began


@dataclass(frozen=True)
class UserStopped:
    at: float  # monotonic time the speech ended (the VAD decided ``stop_s`` later)
    decided_at: float  # monotonic time the VAD decided it


@dataclass(frozen=True)
class UserSaid:
    """The words of a closed turn (never empty)."""

    text: str
    stopped: UserStopped
    heard_at: float  # monotonic time the recogniser's final words came


Heard = UserStarted | UserStopped | UserSaid


class Hearing:
    def __init__(
        self,
        vad: Vad,
        asr: Asr,
        out: Callable[[Heard], None],
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._vad = vad
        self._asr = asr
        self._out = out
        self._now = now
        self._in: asyncio.Queue[AudioChunk | None] = asyncio.Queue(MAX_QUEUED_CHUNKS)
        self._ring: deque[np.ndarray] = deque()
        self._ring_samples = 0
        self._heard = 0  # samples given to the VAD
        self._turn: asyncio.Queue[AudioChunk | None] | None = None
        self._turn_samples = 0
        self._recognising: set[asyncio.Task[None]] = set()
        self._stops: asyncio.Future[UserStopped] | None = None  # the open turn's stop
        self._source: object | None = None
        self._resampler: av.AudioResampler | None = None
        self.dropped = 0
        self.max_turn_s = MAX_TURN_S

    # -- in ------------------------------------------------------------------------------
    def hear(self, source: object, frame: av.AudioFrame) -> None:
        """A microphone frame (aiortc's, any rate and layout), on the loop. One participant is
        heard: the first whose audio arrives (a second microphone would need mixing)."""
        if self._source is None:
            self._source = source
            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE_HZ)
        if source is not self._source or self._resampler is None:
            return
        for out in self._resampler.resample(frame):
            self.feed(out.to_ndarray().reshape(-1).astype(np.float32))

    def feed(self, samples: np.ndarray) -> None:
        """(N,) float32 mono at 16 kHz."""
        if self._in.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._in.get_nowait()
            self.dropped += 1
        self._in.put_nowait(AudioChunk(samples, RATE_HZ))

    def close(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._in.put_nowait(None)

    # -- the work ------------------------------------------------------------------------
    async def run(self) -> None:
        """Until close(): decide turns, recognise them, tell ``out``."""
        detect = self._vad.detect(self._chunks())
        try:
            async for activity in detect:
                lag_s = self._heard / RATE_HZ - activity.at_s  # how long ago it happened
                if activity.speaking:
                    self._open(lag_s + PREROLL_S)
                    self._out(UserStarted(self._now() - lag_s))
                else:
                    now = self._now()
                    self._close(UserStopped(now - lag_s, now))
        finally:
            await detect.aclose()
            if self._turn is not None:
                self._turn.put_nowait(None)
            for task in list(self._recognising):
                task.cancel()

    async def _chunks(self) -> AsyncIterator[AudioChunk]:
        while (chunk := await self._in.get()) is not None:
            self._ring.append(chunk.samples)
            self._ring_samples += len(chunk.samples)
            while self._ring_samples - len(self._ring[0]) >= PREROLL_S * RATE_HZ * 4:
                self._ring_samples -= len(self._ring.popleft())
            if self._turn is not None:
                self._give(chunk.samples)
            self._heard += len(chunk.samples)
            yield chunk

    def _open(self, back_s: float) -> None:
        """A turn opens with the last ``back_s`` of audio heard."""
        self._turn = asyncio.Queue()  # bounded by MAX_TURN_S (_give)
        self._turn_samples = 0
        self._stops = stops = asyncio.get_running_loop().create_future()
        back = int(back_s * RATE_HZ)
        if back and self._ring:
            self._give(np.concatenate(list(self._ring))[-back:])
        task = asyncio.ensure_future(self._recognise(self._turn, stops))
        self._recognising.add(task)
        task.add_done_callback(self._recognising.discard)

    def _give(self, samples: np.ndarray) -> None:
        turn = self._turn
        if turn is None or not len(samples):
            return
        if self._turn_samples + len(samples) > self.max_turn_s * RATE_HZ:
            # a monologue: this turn ends here, its words go on as the next one
            now = self._now()
            self._close(UserStopped(now, now))
            self._open(0.0)
            self._out(UserStarted(now))
            turn = self._turn
            assert turn is not None
        turn.put_nowait(AudioChunk(samples, RATE_HZ))
        self._turn_samples += len(samples)

    def _close(self, stopped: UserStopped) -> None:
        if self._turn is None:
            return
        self._turn.put_nowait(None)
        self._turn = None
        if self._stops is not None and not self._stops.done():
            self._stops.set_result(stopped)
        self._out(stopped)

    async def _recognise(
        self, turn: asyncio.Queue[AudioChunk | None], stops: asyncio.Future[UserStopped]
    ) -> None:
        async def audio() -> AsyncIterator[AudioChunk]:
            while (chunk := await turn.get()) is not None:
                yield chunk

        finals: list[str] = []
        partial = ""
        try:
            stream = self._asr.stream(audio())
            try:
                async for transcript in stream:
                    if transcript.final:
                        finals.append(transcript.text.strip())
                        partial = ""
                    else:
                        partial = transcript.text.strip()
            finally:
                await stream.aclose()
        except Exception:  # a recogniser that fails loses this turn, not the call
            log.exception("speech recognition failed")
            return
        text = " ".join(t for t in [*finals, partial] if t)
        stopped = await stops
        if text:
            self._out(UserSaid(text, stopped, self._now()))
