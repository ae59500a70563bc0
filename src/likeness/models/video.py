from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from likeness.jobs.lease import Leased
from likeness.kit.clock import utcnow
from likeness.kit.db import Base


class Video(Leased, Base):
    """A /v2/videos request: a replica saying a script or an audio file."""

    __tablename__ = "videos"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    replica_id: Mapped[str] = mapped_column(String(32), index=True)
    script: Mapped[str | None] = mapped_column(Text)
    audio_url: Mapped[str | None] = mapped_column(Text)
    callback_url: Mapped[str | None] = mapped_column(Text)
    background_source_url: Mapped[str | None] = mapped_column(Text)
    transparent_background: Mapped[bool] = mapped_column(Boolean, default=False)

    # queued → generating → ready | error   (deleted is shown after a soft delete)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    status_details: Mapped[str | None] = mapped_column(Text)
    generation_progress: Mapped[int] = mapped_column(Integer, default=0)
    error_details: Mapped[str | None] = mapped_column(Text)
    duration_s: Mapped[float | None] = mapped_column()

    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)
