from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from likeness.kit.db import Base


class OutboxMessage(Base):
    """A job message owed to the broker (``jobs/outbox.py``): written in the transaction that
    makes the job due, deleted once the broker has accepted a message sent after it."""

    __tablename__ = "job_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(64))
    row_id: Mapped[str] = mapped_column(String(64))
    # When it was written (or last taken by a sweep): the sweep sends only what has been owed
    # for longer than a grace, so it never races the sender about to send it.
    owed_at: Mapped[datetime] = mapped_column(DateTime, index=True)
