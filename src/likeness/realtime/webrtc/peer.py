"""One participant's WebRTC connection to a conversation: the SDP offer in, the answer out
(WHIP: one round trip, no trickle), the replica's tracks, and the ``app-message`` data
channel carrying the Interactions Protocol both ways."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

from likeness.realtime.session import LiveConversation
from likeness.realtime.webrtc import vp8
from likeness.realtime.webrtc.tracks import ReplicaAudioTrack, ReplicaVideoTrack

log = logging.getLogger(__name__)

DATA_CHANNEL = "app-message"
MAX_OFFER_BYTES = 64_000


class BadOffer(ValueError):
    """The SDP offer cannot be answered; the message says why."""


@dataclass(frozen=True)
class Ice:
    """A STUN/TURN server (an ``RTCIceServer``)."""

    urls: str | list[str]
    username: str | None = None
    credential: str | None = None


class Peer:
    def __init__(
        self,
        conversation: LiveConversation,
        ice: list[Ice],
        audio_only: bool = False,
        on_closed: Callable[[Peer], None] | None = None,
        on_audio: Callable[[object, Any], None] | None = None,
    ) -> None:
        """``on_audio(track, frame)`` hears the participant's microphone, when given (a
        recording); without it, no microphone is asked for."""
        vp8.install()
        self.conversation = conversation
        # An explicit list, even empty: aiortc's default contacts Google's STUN server.
        servers = [RTCIceServer(s.urls, s.username, s.credential) for s in ice]
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self._audio_only = audio_only
        self._on_closed = on_closed
        self._pump: asyncio.Task[None] | None = None
        self._on_audio = on_audio
        self._listening: list[asyncio.Task[None]] = []
        self._closed = False
        self.pc.on("datachannel", self._on_channel)
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    async def answer(self, offer_sdp: str) -> str:
        """The SDP answer to a client's offer (ICE candidates gathered into it)."""
        if len(offer_sdp) > MAX_OFFER_BYTES or not offer_sdp.lstrip().startswith("v=0"):
            raise BadOffer("the body must be an SDP offer (application/sdp, starting v=0)")
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        except Exception as exc:  # aiortc's parser fails on garbage in many ways (asserts too)
            raise BadOffer(f"the SDP offer cannot be read ({type(exc).__name__})") from None
        wanted = {t.kind for t in self.pc.getTransceivers()}
        if "audio" not in wanted:
            raise BadOffer("the SDP offer must receive audio (an audio m-line, recvonly)")
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind == "audio":
                transceiver.sender.replaceTrack(ReplicaAudioTrack(self.conversation))
                # sendrecv answers sendonly to a receive-only offer (aiortc's and_direction)
                transceiver.direction = "sendrecv" if self._on_audio else "sendonly"
            elif transceiver.kind == "video" and not self._audio_only:
                transceiver.sender.replaceTrack(ReplicaVideoTrack(self.conversation))
                transceiver.direction = "sendonly"
        try:
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        except Exception as exc:  # e.g. no codec in common
            raise BadOffer(f"the SDP offer cannot be answered ({type(exc).__name__})") from None
        return str(self.pc.localDescription.sdp)

    def _on_channel(self, channel: object) -> None:
        label = getattr(channel, "label", None)
        if label != DATA_CHANNEL:
            return
        events = self.conversation.events()

        async def pump() -> None:
            try:
                while True:
                    envelope = await events.get()
                    if getattr(channel, "readyState", "") != "open":
                        break
                    channel.send(json.dumps(envelope))  # type: ignore[attr-defined]
            finally:
                self.conversation.unsubscribe(events)

        self._pump = asyncio.ensure_future(pump())
        channel.on("message", self.conversation.handle)  # type: ignore[attr-defined]

    def _on_track(self, track: Any) -> None:
        on_audio = self._on_audio
        if track.kind != "audio" or on_audio is None:
            return

        async def listen() -> None:
            from aiortc.mediastreams import MediaStreamError

            with contextlib.suppress(MediaStreamError):
                while True:
                    on_audio(track, await track.recv())

        self._listening.append(asyncio.ensure_future(listen()))

    async def _on_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected":
            self.conversation.participant_joined()
        elif state in ("failed", "closed"):
            await self.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        for listening in self._listening:
            listening.cancel()
        for sender in self.pc.getSenders():
            if sender.track is not None:
                sender.track.stop()
        await self.pc.close()
        if self._on_closed is not None:
            self._on_closed(self)
