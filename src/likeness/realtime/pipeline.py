"""The full pipeline of a conversation (``pipeline_mode: full``): what the person says
(hearing.py: VAD → ASR) goes to the LLM with the conversation's context, and its answer is
spoken sentence by sentence while it is still being written (the speaker's voice thread
takes each sentence as it comes), with Tavus's events both ways.

Turn-taking: a turn ends after the pause that ``participant_pause_sensitivity`` sets. The
person talking over the replica (for ``participant_interrupt_sensitivity``'s stretch of speech,
longer when ``replica_interruptibility`` is low) interrupts it: the speech stops, the rest of
the answer is dropped, and the context keeps only the sentences that were heard. The person
speaking again while the answer is still being written takes the turn back: the answer is
dropped and their words join the next turn.

Runs on the conversation's loop and only routes: the LLM's and the recogniser's work runs in
their providers' threads or processes; the answer reaches the voice's thread through a
queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from likeness.providers.base import Asr, Llm, Vad
from likeness.realtime import protocol
from likeness.realtime.dialogue import Dialogue, SentenceChunker, tool_call_properties
from likeness.realtime.frames import Sentence, SpeakerEvent, Started, Stopped
from likeness.realtime.hearing import Heard, Hearing, UserSaid, UserStarted, UserStopped

log = logging.getLogger(__name__)

# Silence that ends a turn (s), by participant_pause_sensitivity: higher = answers sooner.
PAUSE_S = {"superlow": 1.6, "verylow": 1.2, "low": 0.9, "medium": 0.5, "high": 0.3}
# Speech that counts as the person starting to talk (s), by participant_interrupt_sensitivity:
# higher = a shorter stretch interrupts the replica. Below it a sound opens no turn at all.
INTERRUPT_S = {"superlow": 1.0, "verylow": 0.6, "low": 0.35, "medium": 0.128, "high": 0.064}
# More speech needed to talk over the replica, by replica_interruptibility.
INTERRUPTIBILITY_S = {"high": 0.0, "medium": 0.0, "low": 0.5, "verylow": 1.0, "superlow": 2.0}


class Stage(Protocol):
    """Where the answers are said: a live call (session.LiveConversation) or a text-only
    chat (chat.ChatConversation)."""

    conversation_id: str
    brain: Any
    speaking: str | None  # the inference_id of the utterance being heard

    def publish(
        self, event_type: str, properties: dict[str, Any], inference_id: str | None = None
    ) -> None: ...
    def interrupt(self) -> None: ...
    def say_sentences(self, sentences: Iterable[str], inference_id: str) -> None: ...


class Tunable(Protocol):
    """The VAD's live settings (providers/vad_silero.Tuning)."""

    start_s: float
    stop_s: float


def seconds(table: dict[str, float], value: str | None, default: str = "medium") -> float:
    """A sensitivity name → seconds (``auto``, unknown or None: ``default``)."""
    return table.get(value or default, table[default])


@dataclass
class Persona:
    """What the conversation's LLM is told first, the tools it is offered (OpenAI ``tools``
    objects), and how it takes turns."""

    system_prompt: str | None = None
    context: str | None = None
    conversational_context: str | None = None
    pause: str | None = None
    interrupt: str | None = None
    interruptibility: str | None = None
    tools: Sequence[Mapping[str, Any]] = ()


@dataclass
class _Reply:
    inference_id: str
    task: asyncio.Task[None] | None = None
    sentences: queue.Queue[str | None] = field(default_factory=queue.Queue)
    written: str = ""
    spoken: bool = False  # handed to the speaker
    heard: str = ""  # of it, the sentences heard so far


class FullPipeline:
    def __init__(
        self,
        conversation: Stage,
        vad: Vad,
        tuning: Tunable,
        asr: Asr,
        llm: Llm,
        persona: Persona,
        on_transcript: Callable[[list[dict[str, str]]], None] = lambda _transcript: None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        """``on_transcript`` gets the whole transcript (``[{role, content}]``) each time it
        changes."""
        self.conversation = conversation
        self.persona = persona
        self.dialogue = Dialogue(
            persona.system_prompt, persona.context, persona.conversational_context
        )
        self._tuning = tuning
        self.llm = llm
        self._now = now
        self._on_transcript = on_transcript
        self.hearing = Hearing(vad, asr, self._heard, now)
        self._reply: _Reply | None = None  # the answer being written or spoken
        self._speaking: dict[str, _Reply] = {}  # answers handed to the speaker, not yet over
        self._barge: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self.stamps: dict[str, float] = {}  # the last turn's stages (monotonic), for benchmarks
        self.sensitivity(persona.pause, persona.interrupt)
        conversation.brain = self

    # -- wiring --------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.ensure_future(self.hearing.run())

    def hear(self, source: object, frame: Any) -> None:
        """A participant's microphone frame (Peer's ``on_audio``)."""
        self.hearing.hear(source, frame)

    async def close(self) -> None:
        self.hearing.close()
        self._drop_reply()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.llm.aclose()

    def sensitivity(self, pause: str | None, interrupt: str | None) -> None:
        if pause is not None:
            self._tuning.stop_s = seconds(PAUSE_S, pause)
        if interrupt is not None:
            self._tuning.start_s = seconds(INTERRUPT_S, interrupt)

    # -- the protocol in -----------------------------------------------------------------
    def handle(self, message: protocol.Listening) -> None:
        if isinstance(message, protocol.Respond):
            self._answer(message.text, str(uuid.uuid4()))
        elif isinstance(message, protocol.Context):
            if message.replace:
                self.dialogue.overwrite_context(message.context)
            else:
                self.dialogue.append_context(message.context)
        else:
            self.sensitivity(message.pause, message.interrupt)

    # -- hearing -------------------------------------------------------------------------
    def _heard(self, heard: Heard) -> None:
        live = self.conversation
        if isinstance(heard, UserStarted):
            live.publish("conversation.user.started_speaking", {"role": "user"})
            self._talked_over()
        elif isinstance(heard, UserStopped):
            if self._barge is not None:  # too short to interrupt
                self._barge.cancel()
                self._barge = None
            live.publish("conversation.user.stopped_speaking", {"role": "user"})
            self.stamps = {"speech end": heard.at, "vad": heard.decided_at}
        elif isinstance(heard, UserSaid):
            self.stamps["asr"] = heard.heard_at
            inference_id = str(uuid.uuid4())
            props = {"role": "user", "speech": heard.text}
            live.publish("conversation.utterance", props, inference_id)
            self._answer(heard.text, inference_id)

    def _talked_over(self) -> None:
        """The person started talking: over the replica (an interrupt, when allowed), or over
        an answer not heard yet (they had not finished: it is dropped, and their next words
        join the same turn)."""
        reply = self._reply
        speaking = self.conversation.speaking
        if reply is None and speaking is None:
            return
        if reply is not None and speaking != reply.inference_id:
            self._drop_reply()
            if reply.spoken:  # queued for the voice: it goes unsaid
                self._unsaid(reply)
                self.conversation.interrupt()
            return
        extra_s = seconds(INTERRUPTIBILITY_S, self.persona.interruptibility)
        if extra_s == 0:
            self._interrupt()
        else:
            self._barge = asyncio.get_running_loop().call_later(extra_s, self._interrupt)

    def _interrupt(self) -> None:
        """The answer in progress stops: its writing, its speech. What was heard of it stays
        in the context (cut when the speaker says it stopped)."""
        self._barge = None
        reply = self._reply
        speaking = self.conversation.speaking
        if reply is None:  # the greeting or an echo: stopped all the same
            if speaking is not None:
                self.conversation.publish("conversation.replica_interrupted", {}, speaking)
                self.conversation.interrupt()
            return
        self._drop_reply()
        if not reply.spoken:
            return
        if speaking == reply.inference_id:
            self.dialogue.replica(reply.inference_id, reply.written)
            self.conversation.publish("conversation.replica_interrupted", {}, reply.inference_id)
        else:
            self._unsaid(reply)
        self.conversation.interrupt()

    def _unsaid(self, reply: _Reply) -> None:
        """An answer dropped before a word of it was heard leaves the context (its writing may
        have been recorded already)."""
        self._speaking.pop(reply.inference_id, None)
        self.dialogue.interrupted(reply.inference_id, "")
        self._kept()

    # -- thinking and speaking -----------------------------------------------------------
    def _answer(self, text: str, inference_id: str) -> None:
        if self._reply is not None:  # a new question supersedes the answer in progress
            self._interrupt()
        self.dialogue.user(text)
        self._kept()
        reply = self._reply = _Reply(inference_id)
        messages = self.dialogue.messages()
        reply.task = asyncio.ensure_future(self._think(reply, messages))

    async def _think(self, reply: _Reply, messages: list[Any]) -> None:
        chunker = SentenceChunker()
        try:
            stream = self.llm.reply(messages, self.persona.tools)
            try:
                async for piece in stream:
                    if isinstance(piece, str):
                        if not reply.written:
                            self.stamps["llm"] = self._now()
                        reply.written += piece
                        for chunk in chunker.push(piece):
                            self._say(reply, chunk)
                    else:  # a tool call: the application runs it
                        props = tool_call_properties(piece)
                        self.conversation.publish(
                            "conversation.tool_call", props, reply.inference_id
                        )
            finally:
                await stream.aclose()
            for chunk in chunker.flush():
                self._say(reply, chunk)
        except Exception:  # the port says it never raises; a call outlives one that does
            log.exception("conversation %s: the LLM failed", self.conversation.conversation_id)
        finally:
            reply.sentences.put(None)
        if self._reply is reply:
            self._reply = None if not reply.spoken else reply
            if reply.spoken:  # the whole answer is the replica's turn (cut if interrupted)
                self.dialogue.replica(reply.inference_id, reply.written)
                self._kept()

    def _say(self, reply: _Reply, sentence: str) -> None:
        reply.sentences.put(sentence)
        if not reply.spoken:
            reply.spoken = True
            self._speaking[reply.inference_id] = reply
            self.stamps["sentence"] = self._now()
            try:
                self.conversation.say_sentences(_until_none(reply.sentences), reply.inference_id)
            except protocol.BadMessage as problem:
                self.conversation.publish("conversation.error", {"message": problem.message})

    def _drop_reply(self) -> None:
        reply, self._reply = self._reply, None
        if reply is None:
            return
        if reply.task is not None:
            reply.task.cancel()
        reply.sentences.put(None)  # the voice's thread waits on it no more

    # -- what the speaker did --------------------------------------------------------------
    def on_speaker(self, event: SpeakerEvent) -> None:
        reply = self._speaking.get(event.inference_id)
        if reply is None:
            return
        if isinstance(event, Started):
            self.stamps["first frame"] = self._now()
            props = {"role": "replica", "speech": reply.written.strip()}
            self.conversation.publish("conversation.utterance", props, reply.inference_id)
        elif isinstance(event, Sentence):
            reply.heard = event.text_so_far
        elif isinstance(event, Stopped):
            del self._speaking[reply.inference_id]
            if self._reply is reply:  # over: it writes no more (a client's interrupt)
                self._drop_reply()
            self.dialogue.replica(reply.inference_id, reply.written)
            if event.interrupted:
                self.dialogue.interrupted(reply.inference_id, reply.heard)
            self._kept()

    def _kept(self) -> None:
        self._on_transcript(self.dialogue.transcript())


def _until_none(items: queue.Queue[str | None]) -> Iterator[str]:
    """The voice's thread takes sentences as they are written (blocking), until None."""
    while (item := items.get()) is not None:
        yield item
