"""The media worker: live conversations (WebRTC peers and Interactions WebSockets) served in a
process of their own, so that the API process carries no media (spec/realtime.md §6).

It listens on a loopback port and records itself in the data directory
(conversation/workers.py: its URL and a secret the API sends back); the API forwards a
conversation's WHIP POST and WebSocket to the workers in turn until one serves it: the worker
already holding the conversation, or one with room that claims it. A worker holds each
conversation's lease (jobs/lease.py through conversation/service.py) and renews it while the
call runs; it ends the conversation on ``max_call_duration``, ``participant_left_timeout`` and
``participant_absent_timeout``, and hangs up when the conversation was ended elsewhere (/end).
If the worker dies, the sweep ends its conversations.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response

from likeness.conversation import repository, service
from likeness.conversation.schemas import Properties
from likeness.conversation.workers import TOKEN_HEADER, WorkerAddress, record
from likeness.engines.base import ReplicaModel
from likeness.engines.registry import get_engine
from likeness.jobs import lease
from likeness.kit.clock import utcnow
from likeness.kit.db import transaction
from likeness.models.replica import work_key
from likeness.providers import asr_whisper, llm_choice
from likeness.providers.base import Asr, Llm
from likeness.providers.sphinx_live import SphinxLivePhones
from likeness.providers.vad_silero import SileroVad, Tuning
from likeness.providers.voice_process import VoiceProcess
from likeness.realtime.call import Call, Full
from likeness.realtime.chat import ChatConversation
from likeness.realtime.pipeline import FullPipeline, Persona
from likeness.realtime.recorder import Recorder
from likeness.realtime.session import LiveConversation, Look
from likeness.realtime.webrtc.peer import BadOffer, Ice
from likeness.runtime import Runtime
from likeness.webhooks import service as webhooks

log = logging.getLogger(__name__)

WATCH_EVERY_S = 1.0
UNJOINED_EVERY_S = 5.0
MODELS_KEPT = 4  # loaded replicas kept for the next call (a load takes seconds)


class NotHere(Exception):
    """This worker cannot serve the conversation; ``status`` tells the API whether another
    worker may (409: held elsewhere, 503: full) or nobody can (404)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Served:
    call: Call
    claim: lease.Claim
    started_at: float
    props: Properties
    watch: asyncio.Task[None] | None = None
    sockets: int = 0
    ended: bool = field(default=False)
    recorder: Recorder | None = None
    pipeline: FullPipeline | None = None


LlmFor = Callable[[service.PersonaView], Llm]  # the LLM a full persona thinks with


class MediaWorker:
    def __init__(
        self,
        runtime: Runtime,
        capacity: int,
        llm_for: LlmFor | None = None,
        asr: Callable[[], Asr] | None = None,
    ) -> None:
        self.runtime = runtime
        self.capacity = capacity
        """``llm_for``: the LLM of a full persona (default: its ``layers.llm`` and the
        settings, llm_choice.py); ``asr``: its ears (default: Whisper tiny.en)."""
        self.llm_for = llm_for or self._persona_llm
        self._asr = asr or asr_whisper.WhisperAsr
        self._background: set[asyncio.Task[None]] = set()
        self._writing: dict[str, set[asyncio.Task[None]]] = {}  # transcripts being written
        self.served: dict[str, Served] = {}
        self._models: OrderedDict[str, ReplicaModel] = OrderedDict()
        self._voice: VoiceProcess | None = None
        self._opening: dict[str, asyncio.Lock] = {}

    @property
    def voice(self) -> VoiceProcess:
        if self._voice is None:
            self._voice = VoiceProcess()
        return self._voice

    async def serve(self, conversation_id: str) -> Served:
        """The conversation's call here, claimed and started on first use; raises NotHere."""
        lock = self._opening.setdefault(conversation_id, asyncio.Lock())
        async with lock:
            served = self.served.get(conversation_id)
            if served is not None and not served.ended:
                return served
            if len(self.served) >= self.capacity:
                raise NotHere(503, "this media worker is full")
            return await self._open(conversation_id)

    async def _open(self, conversation_id: str) -> Served:
        rt = self.runtime
        with rt.sessions() as session:
            row = repository.get_live(session, conversation_id)
            if row is None or row.status != "active" or row.test_mode:
                raise NotHere(404, "no active conversation has this id")
            persona = service.persona_of(session, row)
            conversational_context = row.conversational_context
            props = service.properties(row)
            # The call's timeouts count from the conversation's creation, not from here.
            age_s = (utcnow() - row.created_at).total_seconds()
            chat = row.replica_id is None and row.chat  # text only: no replica, no media
            replica = None if chat else repository.live_replica(session, row.replica_id or "")
            if not chat and (replica is None or replica.status != "completed"):
                raise NotHere(404, "the conversation's replica is not ready")
            if replica is not None:
                engine, bundle_name = replica.engine, replica.artifacts["bundle"]
                replica_id, greeting = replica.id, row.custom_greeting
                audio_only, max_participants = row.audio_only, row.max_participants
        if chat:
            return self._open_chat(conversation_id, persona, conversational_context, props, age_s)
        claim = service.claim(rt.sessions, conversation_id, rt.settings.conversation_lease_s)
        if claim is None:
            raise NotHere(409, "another media worker serves this conversation")
        try:
            bundle = rt.storage.path(f"{work_key(replica_id)}/{bundle_name}")
            model = await asyncio.to_thread(self._model, replica_id, engine, bundle)
            look = Look(rt.settings.conversation_max_height, bool(props.apply_greenscreen))
            live = LiveConversation(
                conversation_id,
                model.session(),
                self.voice.say,
                SphinxLivePhones,
                look=look,
                greeting=greeting,
            )
        except Exception:
            claim.release()
            raise
        ice = [Ice(s.urls, s.username, s.credential) for s in rt.settings.ice_servers]
        recorder = None
        if props.enable_recording:
            path = rt.storage.path(service.recording_key(conversation_id))
            recorder = Recorder(path, live.fps, video=not audio_only)
            recorder.attach(live)  # from the clock's first tick
        pipeline = self._pipeline(conversation_id, live, persona, conversational_context)
        ears = [e.hear for e in (recorder, pipeline) if e is not None]

        def hear(track: object, frame: Any) -> None:
            for ear in ears:
                ear(track, frame)

        call = Call(live, ice, audio_only, max_participants, on_audio=hear if ears else None)
        call.start()
        if pipeline is not None:
            pipeline.start()
            self._warming(pipeline)
        started_at = time.monotonic() - age_s
        served = Served(call, claim, started_at, props, recorder=recorder, pipeline=pipeline)
        served.watch = asyncio.ensure_future(self._watch(conversation_id, served))
        self.served[conversation_id] = served
        log.info("conversation %s: served here", conversation_id)
        return served

    def _open_chat(
        self,
        conversation_id: str,
        persona: service.PersonaView,
        conversational_context: str | None,
        props: Properties,
        age_s: float,
    ) -> Served:
        """A text-only chat: the persona's LLM behind the interactions socket, no media."""
        rt = self.runtime
        claim = service.claim(rt.sessions, conversation_id, rt.settings.conversation_lease_s)
        if claim is None:
            raise NotHere(409, "another media worker serves this conversation")
        chat = ChatConversation(conversation_id)
        pipeline = self._pipeline(conversation_id, chat, persona, conversational_context)
        call = Call(chat, [])
        call.start()
        if pipeline is not None:
            self._warming(pipeline)
        served = Served(call, claim, time.monotonic() - age_s, props, pipeline=pipeline)
        served.watch = asyncio.ensure_future(self._watch(conversation_id, served))
        self.served[conversation_id] = served
        return served

    def _persona_llm(self, persona: service.PersonaView) -> Llm:
        return llm_choice.choose(_layer(persona.layers, "llm"), self.runtime.settings)

    def _pipeline(
        self,
        conversation_id: str,
        live: LiveConversation | ChatConversation,
        persona: service.PersonaView,
        conversational_context: str | None,
    ) -> FullPipeline | None:
        """A full persona's ears and LLM (pipeline_mode full, and an LLM for it)."""
        if persona.pipeline_mode != "full":
            return None
        llm = self.llm_for(persona)
        stt, flow = _layer(persona.layers, "stt"), _layer(persona.layers, "conversational_flow")
        wanted = Persona(
            persona.system_prompt,
            persona.context,
            conversational_context,
            pause=_str(stt.get("participant_pause_sensitivity")),
            interrupt=_str(stt.get("participant_interrupt_sensitivity")),
            interruptibility=_str(flow.get("replica_interruptibility")),
        )
        tuning = Tuning()
        sessions = self.runtime.sessions
        in_order = asyncio.Lock()  # each version of the transcript is written after the last
        writing = self._writing.setdefault(conversation_id, set())

        def keep(entries: list[dict[str, str]]) -> None:
            def write() -> None:
                with transaction(sessions) as session:
                    service.keep_transcript(session, conversation_id, entries)

            async def written() -> None:
                async with in_order:
                    await asyncio.to_thread(write)

            task = asyncio.ensure_future(written())
            writing.add(task)
            task.add_done_callback(writing.discard)

        wanted.tools = llm_choice.tools(_layer(persona.layers, "llm"))
        vad = SileroVad(tuning)
        return FullPipeline(live, vad, tuning, self._asr(), llm, wanted, on_transcript=keep)

    def _warming(self, pipeline: FullPipeline) -> None:
        """The offline LLM loads and reads the system prompt in the background (seconds): the
        participant is not kept waiting for it, and a first turn waits its turn for it."""

        async def warm() -> None:
            try:
                await llm_choice.warm(pipeline.llm, pipeline.dialogue.messages())
            except Exception:  # its turns will say the fallback line
                log.exception("warming the language model failed")

        task = asyncio.ensure_future(warm())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _model(self, replica_id: str, engine: str, bundle: Path) -> ReplicaModel:
        model = self._models.pop(replica_id, None) or get_engine(engine).load(bundle)
        self._models[replica_id] = model
        while len(self._models) > MODELS_KEPT:
            self._models.popitem(last=False)
        return model

    def joined(self, conversation_id: str) -> None:
        """A participant is in: ``system.replica_joined`` (once)."""
        with transaction(self.runtime.sessions) as session:
            sent = service.mark_joined(session, conversation_id)
        self._send(sent)

    async def _watch(self, conversation_id: str, served: Served) -> None:
        """Renew the lease; end the conversation on its timeouts; hang up once it ended."""
        props, call = served.props, served.call
        renew_every_s = self.runtime.settings.conversation_lease_s / 4
        renewed = time.monotonic()
        reason: str | None = None
        while reason is None:
            await asyncio.sleep(WATCH_EVERY_S)
            now = time.monotonic()
            if now - renewed >= renew_every_s:
                renewed = now
                alive = await asyncio.to_thread(served.claim.update)
                if not alive:  # ended elsewhere (/end, the sweep): hang up
                    break
            present = bool(call.peers) or served.sockets > 0
            if now - served.started_at >= props.max_call_duration_s:
                reason = service.MAX_CALL_DURATION
            elif call.ever_joined and not present and call.last_left_at is not None:
                if now - call.last_left_at >= props.participant_left_timeout_s:
                    reason = service.PARTICIPANT_LEFT
            elif (
                not call.ever_joined
                and served.sockets == 0
                and now - served.started_at >= props.participant_absent_timeout_s
            ):
                reason = service.PARTICIPANT_ABSENT
        if reason is not None:
            await self._written(conversation_id)
            with transaction(self.runtime.sessions) as session:
                sent = service.end_claimed(session, served.claim, reason)
            self._send(sent)
            log.info("conversation %s: ended (%s)", conversation_id, reason)
        await self._hang_up(conversation_id, served)

    async def _written(self, conversation_id: str) -> None:
        """The transcript's pending writes are done (before the end announces it)."""
        pending = self._writing.pop(conversation_id, set())
        await asyncio.gather(*pending, return_exceptions=True)

    async def _hang_up(self, conversation_id: str, served: Served) -> None:
        served.ended = True
        if served.pipeline is not None:
            await served.pipeline.close()
        await served.call.close()
        if served.recorder is not None:
            await self._store_recording(conversation_id, served.recorder)
        if self.served.get(conversation_id) is served:
            del self.served[conversation_id]

    async def _store_recording(self, conversation_id: str, recorder: Recorder) -> None:
        """The MP4 is in the blob store: ``application.recording_ready``; if the conversation
        was hard-deleted meanwhile, the recording goes too."""
        duration_s = await recorder.finish()
        if duration_s is None:
            return
        key = service.recording_key(conversation_id)
        with transaction(self.runtime.sessions) as session:
            if repository.get_any(session, conversation_id) is None:
                self.runtime.storage.delete_tree(service.work_key(conversation_id))
                return
            sent = service.recording_ready(
                session, conversation_id, service.RECORDING_BUCKET, key, round(duration_s, 3)
            )
        self._send(sent)
        log.info("conversation %s: recorded %.1f s", conversation_id, duration_s)

    async def end_all(self, reason: str) -> None:
        """Shutting down: every conversation here ends with ``reason``."""
        for conversation_id, served in list(self.served.items()):
            if served.watch is not None:
                served.watch.cancel()
            await self._written(conversation_id)
            with transaction(self.runtime.sessions) as session:
                sent = service.end_claimed(session, served.claim, reason)
            self._send(sent)
            await self._hang_up(conversation_id, served)
        if self._voice is not None:
            self._voice.close()

    async def end_unjoined(self) -> None:
        """Now and then: conversations nobody joined end on their timeouts (no worker serves
        them, so no watch of ours would)."""
        while True:
            try:
                sent = await asyncio.to_thread(self._end_unjoined_now)
                self._send(sent)
            except Exception:  # the database may be away for a moment: next time
                log.exception("ending unjoined conversations failed")
            await asyncio.sleep(UNJOINED_EVERY_S)

    def _end_unjoined_now(self) -> list[str]:
        with transaction(self.runtime.sessions) as session:
            return service.end_unjoined(session, utcnow())

    def _send(self, webhook_ids: list[str]) -> None:
        webhooks.send(self.runtime.sessions, self.runtime.queue, webhook_ids)


def _layer(layers: dict[str, Any], name: str) -> dict[str, Any]:
    layer = layers.get(name)
    return layer if isinstance(layer, dict) else {}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def build_media_app(worker: MediaWorker, token: str) -> FastAPI:
    """The worker's own HTTP face, for the API process only (loopback, with ``token``)."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    def allowed(headers: Any) -> bool:
        return secrets.compare_digest(headers.get(TOKEN_HEADER, ""), token)

    def refused(exc: NotHere) -> JSONResponse:
        return JSONResponse({"message": exc.message}, status_code=exc.status)

    @app.post("/calls/{conversation_id}/whip")
    async def whip(conversation_id: str, request: Request) -> Response:
        if not allowed(request.headers):
            return JSONResponse({"message": "forbidden"}, status_code=403)
        offer = (await request.body()).decode(errors="replace")
        try:
            served = await worker.serve(conversation_id)
            peer_id, answer = await served.call.join(offer)
        except NotHere as exc:
            return refused(exc)
        except Full as exc:
            return JSONResponse({"message": str(exc)}, status_code=400)
        except BadOffer as exc:
            return JSONResponse({"message": str(exc)}, status_code=400)
        await asyncio.to_thread(worker.joined, conversation_id)
        return Response(answer, 201, media_type="application/sdp", headers={"x-peer-id": peer_id})

    @app.delete("/calls/{conversation_id}/whip/{peer_id}")
    async def leave(conversation_id: str, peer_id: str, request: Request) -> Response:
        if not allowed(request.headers):
            return JSONResponse({"message": "forbidden"}, status_code=403)
        served = worker.served.get(conversation_id)
        if served is None or not await served.call.leave(peer_id):
            return JSONResponse({"message": "no such participant"}, status_code=404)
        return Response(status_code=200)

    @app.websocket("/calls/{conversation_id}/interactions")
    async def interactions(websocket: WebSocket, conversation_id: str) -> None:
        if not allowed(websocket.headers):
            await websocket.close(code=4403)
            return
        try:
            served = await worker.serve(conversation_id)
        except NotHere as exc:
            await websocket.close(code=4000 + exc.status, reason=exc.message)
            return
        await websocket.accept()

        async def receive() -> str | None:
            try:
                message = await websocket.receive()
            except WebSocketDisconnect:
                return None
            if message["type"] == "websocket.disconnect":
                return None
            return str(
                message.get("text") or (message.get("bytes") or b"").decode(errors="replace")
            )

        served.sockets += 1
        try:
            await served.call.serve_socket(receive, websocket.send_text)
        finally:
            served.sockets -= 1
            if served.sockets == 0 and not served.call.peers:
                served.call.last_left_at = time.monotonic()

    return app


def run_media_worker(runtime: Runtime, capacity: int, port: int = 0) -> None:
    """Serve until stopped (SIGTERM/SIGINT); then end this worker's conversations."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    token = secrets.token_urlsafe(32)

    worker = MediaWorker(runtime, capacity)
    app = build_media_app(worker, token)
    entry = record(runtime.settings.resolved_data_dir, WorkerAddress(url, token), capacity)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))

    async def main() -> None:
        unjoined = asyncio.ensure_future(worker.end_unjoined())
        # Whisper loads and decodes once now (seconds), not on a participant's first words.
        warming = asyncio.ensure_future(asyncio.to_thread(asr_whisper.warm))
        try:
            await server.serve(sockets=[sock])
        finally:
            unjoined.cancel()
            warming.cancel()
            await worker.end_all(service.internal_error(service.WORKER_LOST_STEP))

    try:
        asyncio.run(main())
    finally:
        entry.unlink(missing_ok=True)
