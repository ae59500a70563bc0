from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from likeness.kit.clock import utcnow
from likeness.kit.db import Base

# Tavus's stock PAL: livekit-plugins-tavus sends it when its user named none. likeness has no
# stock personas, so this id names the default one (echo; spec §4.1: "without a persona, the
# default persona is used").
STOCK_PAL_ID = "pb87e71797da"


class Persona(Base):
    """A /v2/personas (alias /v2/pals) row: how a conversation behaves."""

    __tablename__ = "personas"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    pipeline_mode: Mapped[str] = mapped_column(String(16), default="full")
    system_prompt: Mapped[str | None] = mapped_column(Text)
    context: Mapped[str | None] = mapped_column(Text)
    default_replica_id: Mapped[str | None] = mapped_column(String(32))
    # Stored and returned as given (spec §6), checked only where we act on them.
    layers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # document_ids, document_tags, objectives_id, guardrail_ids: kept, not used yet.
    extras: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
