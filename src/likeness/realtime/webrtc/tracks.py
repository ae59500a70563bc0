"""The replica's two tracks, fed by the conversation's clock: each tick's frame and its audio
keep the pts the clock gave them, so the receiver plays them together."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
from aiortc import MediaStreamTrack

from likeness.media.audio import to_int16
from likeness.realtime.frames import OUTPUT_RATE_HZ, Tick
from likeness.realtime.session import Latest, LiveConversation

VIDEO_QUEUE = 2  # a frame later than this is dropped: a late frame is worth nothing
AUDIO_QUEUE = 25  # a second of audio: it must not gap while the network hiccups
PACKET_SAMPLES = OUTPUT_RATE_HZ // 50  # 20 ms: one Opus packet


class ReplicaVideoTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, conversation: LiveConversation) -> None:
        super().__init__()
        self._conversation = conversation
        self._ticks: Latest[Tick] = conversation.media(VIDEO_QUEUE, played=True)

    async def recv(self) -> av.VideoFrame:
        tick = await self._ticks.get()
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(tick.video.image), format="rgb24")
        frame.pts = tick.video.pts
        frame.time_base = tick.video.time_base
        return frame

    def stop(self) -> None:
        self._conversation.unsubscribe(self._ticks)
        super().stop()


class ReplicaAudioTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, conversation: LiveConversation) -> None:
        super().__init__()
        self._conversation = conversation
        self._ticks: Latest[Tick] = conversation.media(AUDIO_QUEUE, played=True)
        self._pcm = np.zeros(0, np.int16)  # clock audio not sent yet, from sample ``_pts``
        self._pts = 0

    async def recv(self) -> av.AudioFrame:
        """20 ms of the clock's audio. Frames of one Opus packet each: aiortc gives every
        packet of a frame the frame's RTP timestamp, so a 40 ms tick would leave as two
        packets with one timestamp (a receiver merges or drops them), and a jitter buffer
        that holds a few frames would hold twice the time."""
        while len(self._pcm) < PACKET_SAMPLES:
            audio = (await self._ticks.get()).audio
            pcm = to_int16(audio.samples)
            if audio.pts != self._pts + len(self._pcm):  # ticks were dropped: start afresh
                self._pcm, self._pts = pcm, audio.pts
            else:
                self._pcm = np.concatenate([self._pcm, pcm])
        frame = av.AudioFrame.from_ndarray(
            self._pcm[:PACKET_SAMPLES].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = OUTPUT_RATE_HZ
        frame.pts = self._pts
        frame.time_base = Fraction(1, OUTPUT_RATE_HZ)
        self._pcm, self._pts = self._pcm[PACKET_SAMPLES:], self._pts + PACKET_SAMPLES
        return frame

    def stop(self) -> None:
        self._conversation.unsubscribe(self._ticks)
        super().stop()
