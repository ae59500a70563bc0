"""The replica's two tracks, fed by the conversation's clock: each tick's frame and its audio
keep the pts the clock gave them, so the receiver plays them together."""

from __future__ import annotations

import av
import numpy as np
from aiortc import MediaStreamTrack

from likeness.realtime.frames import Tick
from likeness.realtime.session import Latest, LiveConversation

VIDEO_QUEUE = 2  # a frame later than this is dropped: a late frame is worth nothing
AUDIO_QUEUE = 25  # a second of audio: it must not gap while the network hiccups


class ReplicaVideoTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, conversation: LiveConversation) -> None:
        super().__init__()
        self._conversation = conversation
        self._ticks: Latest[Tick] = conversation.media(VIDEO_QUEUE)

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
        self._ticks: Latest[Tick] = conversation.media(AUDIO_QUEUE)

    async def recv(self) -> av.AudioFrame:
        tick = await self._ticks.get()
        audio = tick.audio
        pcm = (np.clip(audio.samples, -1.0, 1.0) * 32767.0).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = audio.sample_rate_hz
        frame.pts = audio.pts
        frame.time_base = audio.time_base
        return frame

    def stop(self) -> None:
        self._conversation.unsubscribe(self._ticks)
        super().stop()
