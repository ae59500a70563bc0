"""One live conversation: the clock that ticks the speaker, the protocol in and out, and the
bounded queues that carry ticks to the transports (WebRTC tracks) and events to every
channel (data channels, WebSockets).

Runs on an asyncio loop; the CPU-bound work (rendering, the greenscreen matte) runs on one
media thread per conversation, so the loop only routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Generic, Protocol, TypeVar

import cv2
import numpy as np

from likeness.engines.base import EngineSession
from likeness.realtime import protocol
from likeness.realtime.frames import Refused, Sentence, SpeakerEvent, Started, Stopped, Tick
from likeness.realtime.speaker import MAX_UTTERANCES, PhonesFactory, Speaker, Voice

log = logging.getLogger(__name__)

GREEN = (0, 255, 155)  # Tavus's greenscreen colour, RGB
MAX_BEHIND_S = 0.5  # a clock this late restarts its schedule rather than bursting frames
T = TypeVar("T")


class Latest(Generic[T]):
    """A bounded queue for one consumer: past ``size`` the oldest item goes (a late video
    frame is worth nothing; memory never grows)."""

    def __init__(self, size: int) -> None:
        self._items: deque[T] = deque(maxlen=size)
        self._ready = asyncio.Event()
        self.dropped = 0

    def put(self, item: T) -> None:
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
        self._items.append(item)
        self._ready.set()

    async def get(self) -> T:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def clear(self) -> None:
        """Drops what is queued (an interrupt: what was said is not to be heard)."""
        self._items.clear()


@dataclass(frozen=True)
class Look:
    """How frames leave: scaled down to at most ``max_height_px`` tall (even sizes, for
    4:2:0 codecs), the person on Tavus's green when ``greenscreen``."""

    max_height_px: int = 512
    greenscreen: bool = False


class Brain(Protocol):
    """What listens and answers in a full pipeline (pipeline.py); echo mode has none."""

    def handle(self, message: protocol.Listening) -> None: ...
    def on_speaker(self, event: SpeakerEvent) -> None: ...


ECHO_ONLY = (
    "{} needs a persona with pipeline_mode full (listening and an LLM); this conversation "
    "runs in echo mode: send conversation.echo and conversation.interrupt"
)


class LiveConversation:
    def __init__(
        self,
        conversation_id: str,
        session: EngineSession,
        voice: Voice,
        phones: PhonesFactory,
        look: Look | None = None,
        greeting: str | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.conversation_id = conversation_id
        self.fps = session.fps
        self.speaker = Speaker(session, voice, phones, self._on_news)
        self.outbox = protocol.Outbox(conversation_id, now)
        self.look = look or Look()
        self._greeting = greeting
        self._joined = False
        self._open: set[str] = set()  # utterances asked for and not yet over
        self._media: list[Latest[Tick]] = []
        self._played: list[Latest[Tick]] = []  # of _media, those a participant hears
        self._events: list[Latest[dict[str, Any]]] = []
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"media-{conversation_id}")
        self._matte: Any = None
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._news = asyncio.Event()  # speech or phones arrived, or an interrupt
        self._interrupted = asyncio.Event()
        self._interrupts = 0
        self.ticks = 0
        self.brain: Brain | None = None
        self.speaking: str | None = None  # the inference_id of the utterance being heard

    # -- wiring ----------------------------------------------------------------------------
    def media(self, size: int = 3, played: bool = False) -> Latest[Tick]:
        """A new consumer of ticks: a transport's track (``played``: an interrupt drops what
        it still holds, not to be heard late) or a recording (every tick, none dropped)."""
        queue: Latest[Tick] = Latest(size)
        self._media.append(queue)
        if played:
            self._played.append(queue)
        return queue

    def events(self, size: int = 256) -> Latest[dict[str, Any]]:
        """A new consumer of outbound envelopes (a data channel, a WebSocket)."""
        queue: Latest[dict[str, Any]] = Latest(size)
        self._events.append(queue)
        return queue

    def unsubscribe(self, queue: object) -> None:
        for queues in (self._media, self._played, self._events):
            with contextlib.suppress(ValueError):
                queues.remove(queue)  # type: ignore[arg-type]  # either list's item type

    def participant_joined(self) -> None:
        """The first participant hears the greeting."""
        if not self._joined and self._greeting:
            self._say_text(self._greeting, str(uuid.uuid4()))
        self._joined = True

    # -- the protocol ----------------------------------------------------------------------
    def handle(self, raw: str | bytes) -> None:
        """One inbound envelope; whatever is wrong with it is answered with an error event."""
        try:
            message = protocol.parse(raw, self.conversation_id)
            if isinstance(message, protocol.Interrupt):
                self.interrupt()
            elif isinstance(message, protocol.Respond | protocol.Context | protocol.Sensitivity):
                if self.brain is None:
                    event_type = event_type_of(message)
                    raise protocol.BadMessage(ECHO_ONLY.format(event_type), event_type)
                self.brain.handle(message)
            elif isinstance(message, protocol.EchoText):
                self._say_text(message.text, message.inference_id)
            else:
                if message.inference_id not in self._open:
                    self._admit(message.inference_id)
                try:
                    self.speaker.say_audio(
                        message.pcm, message.sample_rate_hz, message.inference_id, message.done
                    )
                except ValueError as exc:
                    raise protocol.BadMessage(str(exc), "conversation.echo") from None
        except protocol.BadMessage as problem:
            self._publish_event(self.outbox.error(problem))

    def interrupt(self) -> None:
        """Stop speaking now and drop everything queued (conversation.interrupt, a barge-in)."""
        self.speaker.interrupt()
        self._open.clear()
        self._interrupts += 1
        for queue in self._played:  # what the tracks hold is not to be heard either
            queue.clear()
        self._news.set()
        self._interrupted.set()

    def say_sentences(self, sentences: Iterable[str], inference_id: str) -> None:
        """An answer being written (the brain's): spoken sentence by sentence as they come."""
        self._admit(inference_id)
        self.speaker.say_sentences(sentences, inference_id)

    def publish(
        self, event_type: str, properties: dict[str, Any], inference_id: str | None = None
    ) -> None:
        """An outbound event, stamped, to every channel."""
        self._publish_event(self.outbox.event(event_type, properties, inference_id))

    def _say_text(self, text: str, inference_id: str) -> None:
        self._admit(inference_id)
        self.speaker.say_text(text, inference_id)

    def _admit(self, inference_id: str) -> None:
        if len(self._open) >= MAX_UTTERANCES:
            raise protocol.BadMessage(
                f"too many utterances queued (at most {MAX_UTTERANCES}): wait for "
                "conversation.replica.stopped_speaking or send conversation.interrupt",
                "conversation.echo",
            )
        self._open.add(inference_id)

    def _publish_event(self, envelope: dict[str, Any]) -> None:
        for queue in self._events:
            queue.put(envelope)

    def _on_speaker(self, event: SpeakerEvent) -> None:
        out = self.outbox
        props: dict[str, Any]
        if isinstance(event, Started):
            out.next_turn()
            props = {"role": "replica"}
            self._publish_event(
                out.event("conversation.replica.started_speaking", props, event.inference_id)
            )
            if event.text is not None:
                props = {"role": "replica", "speech": event.text}
                self._publish_event(out.event("conversation.utterance", props, event.inference_id))
        elif isinstance(event, Sentence):
            props = {"role": "replica", "speech": event.text_so_far, "interrupted": False}
            self._publish_event(
                out.event("conversation.utterance.streaming", props, event.inference_id)
            )
        elif isinstance(event, Stopped):
            self._open.discard(event.inference_id)
            props = {
                "role": "replica",
                "duration": round(event.duration_s, 3),
                "interrupted": event.interrupted,
            }
            self._publish_event(
                out.event("conversation.replica.stopped_speaking", props, event.inference_id)
            )
        elif isinstance(event, Refused):
            self._open.discard(event.inference_id)
            error = out.error(protocol.BadMessage(event.message, "conversation.echo"))
            error["properties"]["inference_id"] = event.inference_id
            self._publish_event(error)
        if isinstance(event, Started):
            self.speaking = event.inference_id
        elif isinstance(event, Stopped) and self.speaking == event.inference_id:
            self.speaking = None
        if self.brain is not None:
            self.brain.on_speaker(event)

    # -- the clock -------------------------------------------------------------------------
    async def run(self) -> None:
        """Tick until close(): one frame of 1 / fps each, on the loop's clock. While the
        replica is silent, news (speech or phones arrived, an interrupt) ticks at once
        rather than on the next tick's time: the first frame of speech (or of silence) goes
        out as soon as it can be made. The clock then runs at most one frame ahead of its
        schedule and falls back on it by waiting that frame out on the next tick."""
        loop = self._loop = asyncio.get_running_loop()
        start = loop.time()
        k = 0
        speaking = False
        try:
            while not self._closed:
                interrupts = self._interrupts
                tick = await loop.run_in_executor(self._thread, self._tick)
                if self._interrupts != interrupts and tick.audio.samples.any():
                    # interrupted while this tick was made: its sound is not to be heard
                    silence = replace(tick.audio, samples=np.zeros_like(tick.audio.samples))
                    tick = replace(tick, audio=silence)
                speaking = tick.speaking
                for event in tick.events:
                    self._on_speaker(event)
                for queue in self._media:
                    queue.put(tick)
                self.ticks += 1
                k += 1
                due = start + k / self.fps
                late = loop.time() - due
                if late > MAX_BEHIND_S:
                    log.warning("conversation %s: clock %.2f s late", self.conversation_id, late)
                    start, k = loop.time(), 0
                    continue
                await self._wait(due, due - 1 / self.fps, speaking)
        finally:
            await loop.run_in_executor(self._thread, self._release)
            self._thread.shutdown(wait=False)  # a long-lived worker keeps no idle thread

    async def _wait(self, due: float, earliest: float, speaking: bool) -> None:
        """Until ``due``, or news from ``earliest`` on (never more than a frame early)."""
        loop = asyncio.get_running_loop()
        if earliest > loop.time():
            await asyncio.sleep(earliest - loop.time())
        # while speaking, only an interrupt is news: more speech can wait for its tick
        news = self._interrupted if speaking else self._news
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(news.wait(), max(0.0, due - loop.time()))
        self._news.clear()
        self._interrupted.clear()

    def _on_news(self) -> None:
        """From any thread: the clock may tick now (see run())."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the call is over
                loop.call_soon_threadsafe(self._news.set)

    def _tick(self) -> Tick:
        tick = self.speaker.tick()
        image = self._looked(tick.video.image)
        return replace(tick, video=tick.video.with_image(image))

    def _looked(self, image: np.ndarray) -> np.ndarray:
        if self.look.greenscreen:
            if self._matte is None:
                from likeness.face.segmentation import PersonMatte

                self._matte = PersonMatte()
            alpha = self._matte.alpha(image)[:, :, None]
            green = np.array(GREEN, np.float32)
            image = (image * alpha + green * (1.0 - alpha) + 0.5).astype(np.uint8)
        height, width = image.shape[:2]
        scale = min(1.0, self.look.max_height_px / height)
        size = (int(width * scale) // 2 * 2, int(height * scale) // 2 * 2)
        if size != (width, height):
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        return image

    def _release(self) -> None:
        self.speaker.close()
        if self._matte is not None:
            self._matte.__exit__()

    def close(self) -> None:
        self._closed = True


def event_type_of(message: protocol.Listening) -> str:
    if isinstance(message, protocol.Respond):
        return "conversation.respond"
    if isinstance(message, protocol.Context):
        return f"conversation.{'overwrite' if message.replace else 'append'}_llm_context"
    return "conversation.sensitivity"
