from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from likeness.jobs.lease import Leased
from likeness.kit.clock import utcnow
from likeness.kit.db import Base


class Conversation(Leased, Base):
    """A /v2/conversations row. Leased: the media worker that serves it renews the lease;
    one whose lease lapsed (the worker died) is ended by the sweep (worker.py)."""

    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    # None only for a text-only chat (``chat: true``) without a replica.
    replica_id: Mapped[str | None] = mapped_column(String(32), index=True)
    persona_id: Mapped[str] = mapped_column(String(32))
    callback_url: Mapped[str | None] = mapped_column(Text)
    conversational_context: Mapped[str | None] = mapped_column(Text)
    custom_greeting: Mapped[str | None] = mapped_column(Text)
    audio_only: Mapped[bool] = mapped_column(Boolean, default=False)
    chat: Mapped[bool] = mapped_column(Boolean, default=False)
    test_mode: Mapped[bool] = mapped_column(Boolean, default=False)
    max_participants: Mapped[int | None] = mapped_column(Integer)
    # sha256 hex of the meeting_token (require_auth); the token itself is never stored.
    meeting_token_hash: Mapped[str | None] = mapped_column(String(64))
    # properties as sent (max_call_duration, enable_recording, …): schemas.Properties.
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # memory_stores, document_ids, document_tags, document_retrieval_strategy: kept.
    extras: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    # active → ended
    status: Mapped[str] = mapped_column(String(16), default="active", index=True)
    shutdown_reason: Mapped[str | None] = mapped_column(Text)
    # Webhook-shaped events (system.replica_joined, system.shutdown, …), oldest first.
    events: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # [{"role": "system" | "user" | "assistant", "content": str}]
    transcript: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    joined_at: Mapped[datetime | None] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)

    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)
