"""A text-only conversation (``chat: true``, tavus-cli's chat against a pal): no replica, no
media, only the Interactions WebSocket. ``conversation.respond`` goes to the persona's LLM
(pipeline.py, as in a call) and the answer comes back as the same events a spoken one has,
each sentence as soon as it is written: ``replica.started_speaking``, ``utterance`` (role
replica), ``utterance.streaming``, ``replica.stopped_speaking``."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from likeness.realtime import protocol
from likeness.realtime.frames import Sentence, SpeakerEvent, Started, Stopped
from likeness.realtime.session import ECHO_ONLY, Brain, Latest, event_type_of


class ChatConversation:
    def __init__(self, conversation_id: str, now: Callable[[], float] = time.time) -> None:
        self.conversation_id = conversation_id
        self.outbox = protocol.Outbox(conversation_id, now)
        self.brain: Brain | None = None
        self.speaking: str | None = None
        self._events: list[Latest[dict[str, Any]]] = []
        self._closed = asyncio.Event()
        self._cancelled: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- what Call uses ----------------------------------------------------------------------
    def events(self, size: int = 256) -> Latest[dict[str, Any]]:
        queue: Latest[dict[str, Any]] = Latest(size)
        self._events.append(queue)
        return queue

    def unsubscribe(self, queue: object) -> None:
        with contextlib.suppress(ValueError):
            self._events.remove(queue)  # type: ignore[arg-type]

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._closed.wait()

    def close(self) -> None:
        self._closed.set()

    def participant_joined(self) -> None:
        pass

    def handle(self, raw: str | bytes) -> None:
        try:
            message = protocol.parse(raw, self.conversation_id)
            if isinstance(message, protocol.Interrupt):
                self.interrupt()
            elif isinstance(message, protocol.Respond | protocol.Context | protocol.Sensitivity):
                if self.brain is None:
                    event_type = event_type_of(message)
                    raise protocol.BadMessage(ECHO_ONLY.format(event_type), event_type)
                self.brain.handle(message)
            else:
                raise protocol.BadMessage(
                    "a text-only chat says nothing aloud: send conversation.respond",
                    "conversation.echo",
                )
        except protocol.BadMessage as problem:
            self._publish(self.outbox.error(problem))

    # -- what the pipeline uses --------------------------------------------------------------
    def publish(
        self, event_type: str, properties: dict[str, Any], inference_id: str | None = None
    ) -> None:
        self._publish(self.outbox.event(event_type, properties, inference_id))

    def interrupt(self) -> None:
        if self.speaking is not None:
            self._cancelled.add(self.speaking)

    def say_sentences(self, sentences: Iterable[str], inference_id: str) -> None:
        """Each sentence is "said" as it is written (a thread waits on them: the iterable
        blocks until the model writes the next)."""
        loop = asyncio.get_running_loop()

        def tell(event: SpeakerEvent) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: the chat is over
                loop.call_soon_threadsafe(self._on_speaker, event)

        def read() -> None:
            said = ""
            started = time.monotonic()
            for sentence in sentences:
                if inference_id in self._cancelled:
                    break
                if not said:
                    tell(Started(inference_id, None))
                said = f"{said} {sentence}".strip()
                tell(Sentence(inference_id, said))
            if said:
                interrupted = inference_id in self._cancelled
                tell(Stopped(inference_id, time.monotonic() - started, interrupted, said))

        self.speaking = inference_id
        threading.Thread(target=read, name="chat-answer", daemon=True).start()

    def _on_speaker(self, event: SpeakerEvent) -> None:
        out = self.outbox
        if isinstance(event, Started):
            out.next_turn()
            props: dict[str, Any] = {"role": "replica"}
            self.publish("conversation.replica.started_speaking", props, event.inference_id)
        if self.brain is not None:  # the pipeline says the utterance (role replica)
            self.brain.on_speaker(event)
        if isinstance(event, Sentence):
            props = {"role": "replica", "speech": event.text_so_far, "interrupted": False}
            self.publish("conversation.utterance.streaming", props, event.inference_id)
        elif isinstance(event, Stopped):
            self._cancelled.discard(event.inference_id)
            if self.speaking == event.inference_id:
                self.speaking = None
            props = {"role": "replica", "duration": round(event.duration_s, 3),
                     "interrupted": event.interrupted}  # fmt: skip
            self.publish("conversation.replica.stopped_speaking", props, event.inference_id)

    def _publish(self, envelope: dict[str, Any]) -> None:
        for queue in self._events:
            queue.put(envelope)
