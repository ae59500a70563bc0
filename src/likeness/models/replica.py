from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from likeness.jobs.lease import Leased
from likeness.kit.clock import utcnow
from likeness.kit.db import Base


def work_key(replica_id: str) -> str:
    """Where a replica's files live in storage: its training work dir, bundle included."""
    return f"replicas/{replica_id}"


class Replica(Leased, Base):
    __tablename__ = "replicas"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    # "replica" or "face": the API name the caller used, so callbacks answer in kind.
    api_name: Mapped[str] = mapped_column(String(16), default="replica")
    replica_type: Mapped[str] = mapped_column(String(16), default="user")
    model_name: Mapped[str] = mapped_column(String(32))
    engine: Mapped[str] = mapped_column(String(64))
    train_video_url: Mapped[str] = mapped_column(Text)
    consent_video_url: Mapped[str | None] = mapped_column(Text)
    callback_url: Mapped[str | None] = mapped_column(Text)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    status: Mapped[str] = mapped_column(String(16), default="started", index=True)
    training_progress: Mapped[int] = mapped_column(Integer, default=0)
    error_type: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_detail: Mapped[str | None] = mapped_column(Text)

    # Job bookkeeping: the last finished stage (the lease columns come from Leased).
    stage: Mapped[str | None] = mapped_column(String(32))
    artifacts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)
