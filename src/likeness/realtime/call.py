"""A conversation being served: its live replica ticking, and the participants joined to it
(WebRTC peers, and backends on the Interactions WebSocket)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from likeness.kit.ids import opaque_id
from likeness.realtime.chat import ChatConversation
from likeness.realtime.session import LiveConversation
from likeness.realtime.webrtc.peer import Ice, Peer


class Full(Exception):
    """Another participant would pass the conversation's ``max_participants``."""


class Call:
    def __init__(
        self,
        conversation: LiveConversation | ChatConversation,
        ice: list[Ice],
        audio_only: bool = False,
        max_participants: int | None = None,
        on_audio: Callable[[object, Any], None] | None = None,
    ) -> None:
        self.conversation = conversation
        self._ice = ice
        self._audio_only = audio_only
        self._max = max_participants
        self._on_audio = on_audio  # the participants' microphones (a recording), if any
        self.peers: dict[str, Peer] = {}
        self._clock: asyncio.Task[None] | None = None
        self.last_left_at: float | None = None  # monotonic; None while someone is in
        self.ever_joined = False

    def start(self) -> None:
        self._clock = asyncio.ensure_future(self.conversation.run())

    async def join(self, offer_sdp: str) -> tuple[str, str]:
        """(participant id, SDP answer); raises Full or peer.BadOffer."""
        if not isinstance(self.conversation, LiveConversation):
            raise Full("a text-only chat (chat: true) has no media: use the interactions socket")
        # The replica is a participant too (Tavus counts it in max_participants).
        if self._max is not None and len(self.peers) + 1 >= self._max:
            raise Full(f"this conversation allows at most {self._max} participants")
        peer = Peer(self.conversation, self._ice, self._audio_only, self._left, self._on_audio)
        try:
            answer = await peer.answer(offer_sdp)
        except BaseException:
            await peer.close()
            raise
        peer_id = opaque_id()
        self.peers[peer_id] = peer
        self.ever_joined = True
        self.last_left_at = None
        return peer_id, answer

    async def leave(self, peer_id: str) -> bool:
        peer = self.peers.get(peer_id)
        if peer is None:
            return False
        await peer.close()
        return True

    def _left(self, peer: Peer) -> None:
        for peer_id, known in list(self.peers.items()):
            if known is peer:
                del self.peers[peer_id]
        if not self.peers:
            self.last_left_at = time.monotonic()

    async def serve_socket(
        self, receive: Callable[[], Awaitable[str | None]], send: Callable[[str], Awaitable[Any]]
    ) -> None:
        """One backend on the Interactions WebSocket: its messages in, every event out, until
        ``receive`` answers None (closed)."""
        import json

        events = self.conversation.events()

        async def pump() -> None:
            while True:
                await send(json.dumps(await events.get()))

        pumping = asyncio.ensure_future(pump())
        try:
            while (message := await receive()) is not None:
                self.conversation.handle(message)
        finally:
            pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pumping
            self.conversation.unsubscribe(events)

    async def close(self) -> None:
        for peer in list(self.peers.values()):
            await peer.close()
        self.conversation.close()
        if self._clock is not None:
            await self._clock
