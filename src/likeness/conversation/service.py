"""Conversation use cases: create, read, list, end, delete over REST, and the small
functions the media side calls while it serves one (claim, replica joined, events,
transcript, end with a reason). Every state change that Tavus announces is kept in the
row's ``events`` and, with a ``callback_url``, recorded as a signed webhook (§4.4) in the
same transaction; the caller enqueues the returned webhook ids after commit.

A conversation is a leased row (jobs/lease.py): the media worker serving it holds the lease
(``claim``) and renews it; if the worker dies, the sweep (worker.py) ends it with an
internal-error ``shutdown_reason``. Ending it here (/end, a timeout) makes the worker's next
renewal fail: that is how a worker learns to hang up.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from likeness.config import Settings
from likeness.conversation import repository
from likeness.conversation.schemas import CreateConversation, Properties
from likeness.errors import BadRequest
from likeness.jobs import lease
from likeness.kit import ids
from likeness.kit.clock import iso_us, utcnow
from likeness.kit.db import transaction
from likeness.kit.safe_url import is_well_formed
from likeness.models import Conversation
from likeness.models.persona import STOCK_PAL_ID
from likeness.providers import llm_choice
from likeness.upload import service as uploads
from likeness.webhooks import repository as webhook_repository
from likeness.webhooks import service as webhooks

MEDIA = lease.Kind("conversation.media", Conversation, repository.unfinished)

# shutdown_reason values (spec §4.4, to the letter).
END_ENDPOINT = "end_conversation_endpoint_hit"
MAX_CALL_DURATION = "max_call_duration reached"
PARTICIPANT_LEFT = "participant_left_timeout reached"
PARTICIPANT_ABSENT = "participant_absent_timeout reached"
WORKER_LOST_STEP = "media worker"
# application.recording_ready's bucket_name: recordings stay in likeness's own blob store
# (the data directory), under s3_key; GET /v2/conversations/{id}/recording serves them.
RECORDING_BUCKET = "likeness-local"
RECORDING_FILE = "recording.mp4"


def internal_error(step: str) -> str:
    """``internal error occurred at step x``: the reason for a conversation that broke."""
    return f"internal error occurred at step {step}"


class AtCapacity(BadRequest):
    """Tavus's observed body for a full plan: ``message`` only."""

    def __init__(self) -> None:
        super().__init__("User has reached maximum concurrent conversations")

    def body(self) -> dict[str, Any]:
        return {"message": self.message}


LIVEKIT = (
    "LiveKit transport is not supported yet: likeness serves each conversation over its own "
    "WebRTC page (conversation_url). Leave out properties.livekit_ws_url and "
    "properties.livekit_room_token, and use a persona without layers.transport.transport_type "
    '"livekit".'
)
MEETING_URL = (
    "meeting_url is not supported yet: likeness cannot send the replica into a Zoom, Google "
    "Meet or Teams meeting. Leave meeting_url out and open the conversation_url instead."
)


# -- REST -------------------------------------------------------------------------------------


def create(
    session: Session, settings: Settings, body: CreateConversation
) -> tuple[Conversation, str | None]:
    """A new conversation (ended at once in test_mode), and its meeting token when
    ``require_auth`` (only its hash is stored)."""
    props = body.properties or Properties()
    persona_key, replica_key = body.persona_key, body.replica_key
    if body.meeting_url:
        raise BadRequest(MEETING_URL)
    persona_id = body.persona_id or body.pal_id or STOCK_PAL_ID
    layers: dict[str, Any] = {}
    default_replica = None
    if persona_id != STOCK_PAL_ID:
        persona = repository.persona(session, persona_id)
        if persona is None:
            raise BadRequest(f"Invalid {persona_key}")
        layers, default_replica = persona.layers or {}, persona.default_replica_id
        if persona.pipeline_mode == "full":
            missing = llm_choice.unavailable(layers.get("llm"), settings)
            if missing:
                raise BadRequest(missing)
    transport = layers.get("transport") or {}
    if (
        props.livekit_ws_url
        or props.livekit_room_token
        or (isinstance(transport, dict) and transport.get("transport_type") == "livekit")
    ):
        raise BadRequest(LIVEKIT)
    replica_id = body.replica_id or body.face_id or default_replica
    if replica_id is not None:
        _check_replica(session, replica_id, replica_key)
    elif not body.chat:
        raise BadRequest(
            f"{replica_key} is required: name a completed replica, or use a persona with a "
            "default_replica_id (a text-only chat, chat: true, needs none)"
        )
    if body.callback_url and not is_well_formed(body.callback_url):
        raise BadRequest("Invalid callback_url")
    uploads.refuse_private(session, settings, "callback_url", body.callback_url, own_ok=False)
    test_mode = bool(body.test_mode)
    if not test_mode:
        repository.lock_capacity(session)  # held to the commit: this create's row counts next
        if repository.active_count(session) >= settings.max_conversations:
            raise AtCapacity()

    token = secrets.token_urlsafe(24) if body.require_auth else None
    now = utcnow()
    conversation = Conversation(
        id=ids.conversation_id(),
        name=body.conversation_name,
        replica_id=replica_id,
        persona_id=persona_id,
        callback_url=body.callback_url,
        conversational_context=body.conversational_context,
        custom_greeting=body.custom_greeting,
        audio_only=bool(body.audio_only),
        chat=bool(body.chat),
        test_mode=test_mode,
        max_participants=body.max_participants,
        meeting_token_hash=_digest(token) if token else None,
        properties=props.model_dump(exclude_none=True),
        extras={
            k: v
            for k, v in body.model_dump(
                include={
                    "memory_stores",
                    "document_ids",
                    "document_tags",
                    "document_retrieval_strategy",
                }
            ).items()
            if v is not None
        },
        status="ended" if test_mode else "active",
        ended_at=now if test_mode else None,
        events=[],
        transcript=[],
        created_at=now,
        updated_at=now,
    )
    session.add(conversation)
    session.flush()
    return conversation, token


def _check_replica(session: Session, replica_id: str, key: str) -> None:
    replica = repository.live_replica(session, replica_id)
    if replica is None:
        raise BadRequest(f"Invalid {key}")
    if replica.status == "started":
        raise BadRequest(
            f"Replica {replica_id} is still training (status started); a conversation needs "
            "a completed replica"
        )
    if replica.status != "completed":
        raise BadRequest(
            f"Replica {replica_id} failed training (status {replica.status}); a conversation "
            "needs a completed replica"
        )


def get(session: Session, conversation_id: str) -> Conversation:
    conversation = repository.get_live(session, conversation_id)
    if conversation is None:
        raise BadRequest("Invalid conversation_id")
    return conversation


def end_by_request(session: Session, conversation_id: str) -> list[str]:
    """POST /end: ``end_conversation_endpoint_hit``. Ending an ended one changes nothing."""
    get(session, conversation_id)
    return end(session, conversation_id, END_ENDPOINT)


def delete(session: Session, conversation_id: str, hard: bool) -> list[str]:
    """Soft: ends it (announced) and hides it. Hard: the row and its webhooks go too."""
    conversation = (
        repository.get_any(session, conversation_id)
        if hard
        else repository.get_live(session, conversation_id)
    )
    if conversation is None:
        raise BadRequest("Invalid conversation_id")
    if hard:
        webhook_repository.forget(session, conversation.id)
        session.delete(conversation)
        return []
    sent = end(session, conversation_id, END_ENDPOINT)
    conversation.deleted_at = utcnow()
    return sent


def work_key(conversation_id: str) -> str:
    """The conversation's folder in the blob store (its recording); a hard delete removes it."""
    return f"conversations/{conversation_id}"


def recording_key(conversation_id: str) -> str:
    return f"{work_key(conversation_id)}/{RECORDING_FILE}"


def conversation_url(public_url: str, conversation_id: str) -> str:
    """The page that joins the call. With ``require_auth``, append ``?t=MEETING_TOKEN``."""
    return f"{public_url.rstrip('/')}/c/{conversation_id}"


def to_wire(conversation: Conversation, public_url: str, verbose: bool = False) -> dict[str, Any]:
    """GET and list: both the old and the new names of the replica and persona ids (§0)."""
    out: dict[str, Any] = {
        "conversation_id": conversation.id,
        "conversation_name": conversation.name,
        "conversation_url": conversation_url(public_url, conversation.id),
        "callback_url": conversation.callback_url,
        "status": conversation.status,
        "replica_id": conversation.replica_id,
        "face_id": conversation.replica_id,
        "persona_id": conversation.persona_id,
        "pal_id": conversation.persona_id,
        "created_at": iso_us(conversation.created_at),
        "updated_at": iso_us(conversation.updated_at),
    }
    if verbose:
        out["shutdown_reason"] = conversation.shutdown_reason
        out["transcript"] = list(conversation.transcript or [])
        out["events"] = list(conversation.events or [])
    return out


# -- the meeting token ------------------------------------------------------------------------


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_ok(conversation: Conversation, token: str | None) -> bool:
    """May this token join? Always, without ``require_auth``; else only the token create
    answered (compared in constant time)."""
    if conversation.meeting_token_hash is None:
        return True
    if not token:
        return False
    return hmac.compare_digest(_digest(token), conversation.meeting_token_hash)


# -- what the media side calls ----------------------------------------------------------------


def properties(conversation: Conversation) -> Properties:
    """The conversation's properties with the spec's defaults (``max_call_duration_s``…)."""
    return Properties.model_validate(conversation.properties or {})


@dataclass(frozen=True)
class PersonaView:
    """What the media side needs of a conversation's persona (the default one included)."""

    persona_id: str
    pipeline_mode: str  # "echo" | "full" (listens and answers: realtime/pipeline.py)
    system_prompt: str | None
    context: str | None
    layers: dict[str, Any]


def persona_of(session: Session, conversation: Conversation) -> PersonaView:
    """The persona a conversation follows; likeness's default (echo) for the stock id or
    for a persona deleted since."""
    row = repository.persona(session, conversation.persona_id)
    if row is None:
        return PersonaView(conversation.persona_id, "echo", None, None, {})
    return PersonaView(row.id, row.pipeline_mode, row.system_prompt, row.context, row.layers or {})


def claim(
    sessions: sessionmaker[Session], conversation_id: str, lease_s: float
) -> lease.Claim | None:
    """Take an active conversation nobody serves (or whose worker died). Keep the claim
    alive with ``claim.kept_alive()``; a renewal that fails means it ended: hang up."""
    with transaction(sessions) as session:
        until = lease.acquire(session, MEDIA, conversation_id, lease_s)
    if until is None:
        return None
    return lease.Claim(sessions, MEDIA, conversation_id, until, lease_s)


def mark_joined(session: Session, conversation_id: str) -> list[str]:
    """The replica is in the call: ``system.replica_joined``, once."""
    conversation = _live(session, conversation_id)
    if conversation is None or conversation.joined_at is not None:
        return []
    conversation.joined_at = utcnow()
    return _announce(session, conversation, "system.replica_joined", "system", {})


def append_transcript(
    session: Session, conversation_id: str, entries: list[dict[str, str]]
) -> None:
    """Add ``[{"role": "system" | "user" | "assistant", "content": "…"}]`` turns."""
    for entry in entries:
        if entry.get("role") not in ("system", "user", "assistant") or not isinstance(
            entry.get("content"), str
        ):
            raise ValueError(f"not a transcript entry: {entry!r}")
    conversation = _live(session, conversation_id)
    if conversation is not None:
        conversation.transcript = [
            *(conversation.transcript or []),
            *({"role": e["role"], "content": e["content"]} for e in entries),
        ]


def keep_transcript(session: Session, conversation_id: str, entries: list[dict[str, str]]) -> None:
    """The whole transcript as it stands now (a live conversation's, as its dialogue
    changes: an interrupted answer is cut to what was heard)."""
    conversation = _live(session, conversation_id)
    if conversation is not None:
        conversation.transcript = []
        append_transcript(session, conversation_id, entries)


def end(session: Session, conversation_id: str, reason: str) -> list[str]:
    """active → ended with ``reason``: ``system.shutdown``, then
    ``application.transcription_ready`` if anything was said. Once: ending an ended
    conversation returns no webhooks and changes nothing."""
    now = utcnow()
    if not repository.end_if_active(session, conversation_id, reason, now):
        return []
    conversation = session.get(Conversation, conversation_id, populate_existing=True)
    assert conversation is not None
    conversation.updated_at = now
    sent = _announce(
        session, conversation, "system.shutdown", "system", {"shutdown_reason": reason}
    )
    if conversation.transcript:
        sent += _announce(
            session,
            conversation,
            "application.transcription_ready",
            "application",
            {"transcript": list(conversation.transcript)},
        )
    return sent


def end_claimed(session: Session, claim: lease.Claim, reason: str) -> list[str]:
    """A media worker ends the conversation it serves (a timeout, an error): its claim ends
    in the same transaction."""
    claim.finish(session)
    return end(session, claim.row_id, reason)


def recording_ready(
    session: Session, conversation_id: str, bucket_name: str, s3_key: str, duration_s: float
) -> list[str]:
    """``application.recording_ready`` (``enable_recording``), once the MP4 is stored."""
    conversation = repository.get_live(session, conversation_id)
    if conversation is None:
        return []
    props = {"bucket_name": bucket_name, "s3_key": s3_key, "duration": duration_s}
    return _announce(
        session, conversation, "application.recording_ready", "application", props, False
    )


def end_abandoned(session: Session, now: datetime, grace_s: float) -> tuple[list[str], list[str]]:
    """The sweep: active conversations whose media worker stopped renewing (lease lapsed
    by more than ``grace_s``) end with an internal error. Returns (ended conversation ids,
    webhook ids to send after commit)."""
    ended, sent = [], []
    for conversation_id in lease.sweep(session, MEDIA, now, grace_s):
        events = end(session, conversation_id, internal_error(WORKER_LOST_STEP))
        ended.append(conversation_id)
        sent += events
    return ended, sent


def _live(session: Session, conversation_id: str) -> Conversation | None:
    conversation = repository.get_live(session, conversation_id)
    return conversation if conversation is not None and conversation.status == "active" else None


def _announce(
    session: Session,
    conversation: Conversation,
    event_type: str,
    message_type: str,
    properties: dict[str, Any],
    with_replica: bool = True,
) -> list[str]:
    """Keep the event on the row (``verbose``) and record its webhook (§4.4 envelope)."""
    replica = {"replica_id": conversation.replica_id} if with_replica else {}
    event = {
        "properties": {**replica, **properties},
        "conversation_id": conversation.id,
        "webhook_url": conversation.callback_url,
        "event_type": event_type,
        "message_type": message_type,
        "timestamp": iso_us(utcnow()),
    }
    conversation.events = [*(conversation.events or []), event]
    if not conversation.callback_url:
        return []
    return [webhooks.record(session, conversation.callback_url, event, conversation.id)]


def end_unjoined(session: Session, now: datetime) -> list[str]:
    """Conversations nobody joined (no media worker serves them) end when their
    ``participant_absent_timeout`` or ``max_call_duration`` has passed since they were
    created. A media worker runs this now and then; ending is a compare-and-set, so several
    workers may. Returns the webhook ids to send after commit."""
    sent: list[str] = []
    for conversation in repository.unserved(session):
        props = properties(conversation)
        age_s = (now - conversation.created_at).total_seconds()
        if age_s >= props.participant_absent_timeout_s:
            sent += end(session, conversation.id, PARTICIPANT_ABSENT)
        elif age_s >= props.max_call_duration_s:
            sent += end(session, conversation.id, MAX_CALL_DURATION)
    return sent
