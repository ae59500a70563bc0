"""A call's recording (``enable_recording``): the replica's frames and voice as the clock sent
them, with the participants' microphones mixed in, written as an MP4 (H.264 + AAC).

The clock must never wait for the encoder: ticks and microphone audio go to an encoder thread
through a bounded queue, and when that thread falls behind, what does not fit is dropped (and
logged) rather than held. A dropped tick leaves its frame's place to the frame before and its
audio's place to silence, so picture and sound stay on the clock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from likeness.realtime.frames import OUTPUT_RATE_HZ, Tick
from likeness.realtime.session import LiveConversation

log = logging.getLogger(__name__)

QUEUE_TICKS = 50  # two seconds at 25 fps (512 px RGB: ~40 MB at most)
MIC_AHEAD_S = 2.0  # microphone audio further ahead of the clock than this is dropped
CRF = 23


@dataclass(frozen=True)
class _Mic:
    source: int  # one resampler and cursor per participant track
    at: int  # the clock's output sample when it arrived
    frame: av.AudioFrame


class Recorder:
    def __init__(self, path: Path, fps: float, video: bool = True) -> None:
        self.path = path
        self.fps = fps
        self._video = video
        self._queue: queue.Queue[Tick | _Mic | None] = queue.Queue(QUEUE_TICKS)
        self._thread = threading.Thread(target=self._encode, name="recorder", daemon=True)
        self._pump: asyncio.Task[None] | None = None
        self._clock_at = 0  # output sample where the last tick's audio ended
        self.dropped = 0
        self.ticks = 0  # encoded
        self._first: Tick | None = None
        self._failed: BaseException | None = None
        self._duration_s = 0.0

    # -- the loop's side ------------------------------------------------------------------
    def attach(self, conversation: LiveConversation) -> None:
        """Record every tick of ``conversation`` from now on (call on its loop)."""
        ticks = conversation.media(QUEUE_TICKS)
        self.start()

        async def pump() -> None:
            try:
                while True:
                    tick = await ticks.get()
                    self.feed(tick)
            finally:
                conversation.unsubscribe(ticks)

        self._pump = asyncio.ensure_future(pump())

    def start(self) -> None:
        self._thread.start()

    def feed(self, tick: Tick) -> None:
        """One tick of the clock (attach() feeds them all)."""
        self._clock_at = tick.audio.pts + len(tick.audio.samples)
        self._offer(tick)

    def hear(self, source: object, frame: av.AudioFrame) -> None:
        """A participant's microphone frame, placed on the clock where it arrived."""
        self._offer(_Mic(id(source), self._clock_at, frame))

    def _offer(self, item: Tick | _Mic) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning("%s: the encoder is behind, %d items dropped", self.path, self.dropped)

    async def finish(self) -> float | None:
        """Stop, close the file; the recording's duration in seconds, or None when nothing
        was recorded (the file is then removed)."""
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        await asyncio.to_thread(self._queue.put, None)
        await asyncio.to_thread(self._thread.join)
        if self.dropped:
            log.warning("%s: %d items dropped in all (encoder behind)", self.path, self.dropped)
        if self._failed is not None or self.ticks == 0:
            if self._failed is not None:
                log.error("%s: recording failed: %r", self.path, self._failed)
            self._partial.unlink(missing_ok=True)
            return None
        try:
            self._partial.replace(self.path)
        except FileNotFoundError:  # its folder was deleted during the call (a hard delete)
            return None
        return self._duration_s

    # -- the encoder thread -----------------------------------------------------------------
    @property
    def _partial(self) -> Path:
        return self.path.with_name(self.path.name + ".partial")

    def _encode(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with av.open(str(self._partial), mode="w", format="mp4") as container:
                self._write(container)
        except BaseException as exc:  # the call goes on; the recording is lost, and said so
            self._failed = exc
            while self._queue.get() is not None:  # keep the clock's side from blocking
                pass

    def _write(self, container: av.container.OutputContainer) -> None:
        rate = Fraction(self.fps).limit_denominator(1001)
        vstream: av.VideoStream | None = None
        astream = container.add_stream("aac", rate=OUTPUT_RATE_HZ)
        astream.layout = "mono"
        mic = _Mixer()
        first_tick, audio_start, audio_at = -1, 0, 0  # first tick; its audio; samples written
        last_index = -1
        while (item := self._queue.get()) is not None:
            if isinstance(item, _Mic):
                mic.add(item)
                continue
            tick = item
            if first_tick < 0:
                first_tick, audio_start = tick.index, tick.audio.pts
                if self._video:
                    vstream = container.add_stream("libx264", rate=rate)
                    vstream.pix_fmt = "yuv420p"
                    vstream.options = {"crf": str(CRF), "preset": "ultrafast"}
                    height, width = tick.video.image.shape[:2]
                    vstream.width, vstream.height = width, height
            if vstream is not None:
                image = np.ascontiguousarray(tick.video.image[:, :, :3])
                planes = cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420).astype(np.uint8, copy=False)
                frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
                frame.pts = tick.index - first_tick
                frame.time_base = 1 / rate
                container.mux(vstream.encode(frame))
            start = tick.audio.pts - audio_start
            if start > audio_at:  # ticks were dropped: silence in their place
                self._audio(container, astream, np.zeros(start - audio_at, np.float32), audio_at)
                audio_at = start
            samples = tick.audio.samples + mic.take(tick.audio.pts, len(tick.audio.samples))
            self._audio(container, astream, np.clip(samples, -1.0, 1.0), audio_at)
            audio_at += len(samples)
            last_index = tick.index
            self.ticks += 1
        if vstream is not None:
            container.mux(vstream.encode(None))
        container.mux(astream.encode(None))
        self._duration_s = (last_index - first_tick + 1) / self.fps if self.ticks else 0.0

    @staticmethod
    def _audio(
        container: av.container.OutputContainer, stream: av.AudioStream, pcm: np.ndarray, at: int
    ) -> None:
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm, np.float32).reshape(1, -1), format="flt", layout="mono"
        )
        frame.sample_rate = OUTPUT_RATE_HZ
        frame.pts = at
        frame.time_base = Fraction(1, OUTPUT_RATE_HZ)
        container.mux(stream.encode(frame))


class _Mixer:
    """The participants' audio at the output rate, on the clock's sample numbers: each track
    continues where it left off, or from where it arrived after a gap."""

    def __init__(self) -> None:
        self._resamplers: dict[int, av.AudioResampler] = {}
        self._cursor: dict[int, int] = {}
        self._at = 0  # the clock sample of _buffer[0]
        self._buffer = np.zeros(0, np.float32)

    def add(self, mic: _Mic) -> None:
        resampler = self._resamplers.get(mic.source)
        if resampler is None:  # one per participant track, made once (it keeps state)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=OUTPUT_RATE_HZ)
            self._resamplers[mic.source] = resampler
        pieces = [p.to_ndarray().reshape(-1) for p in resampler.resample(mic.frame)]
        if not pieces:
            return
        samples = np.concatenate(pieces).astype(np.float32)
        at = max(mic.at, self._cursor.get(mic.source, 0), self._at)
        if at - mic.at > MIC_AHEAD_S * OUTPUT_RATE_HZ:
            return  # this track runs ahead of the clock: let the clock catch up
        self._cursor[mic.source] = at + len(samples)
        end = at + len(samples) - self._at
        if end > len(self._buffer):
            self._buffer = np.concatenate([self._buffer, np.zeros(end - len(self._buffer))])
        self._buffer[at - self._at : end] += samples

    def take(self, start: int, count: int) -> np.ndarray:
        """The mix under output samples [start, start + count); earlier audio is let go."""
        out = np.zeros(count, np.float32)
        lo = start - self._at
        piece = self._buffer[max(lo, 0) : lo + count]
        if len(piece):
            out[max(-lo, 0) : max(-lo, 0) + len(piece)] = piece
        self._buffer = self._buffer[max(lo + count, 0) :]
        self._at = start + count
        return out
