"""What every job gets: the database, storage, settings and the queue. One type for all
features, built once by the worker (``likeness.worker``) and passed in."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from likeness.config import Settings
from likeness.jobs import outbox
from likeness.jobs.queue import JobQueue
from likeness.storage.base import BlobStore


@dataclass(frozen=True)
class JobContext:
    sessions: sessionmaker[Session]
    storage: BlobStore
    settings: Settings
    queue: JobQueue

    @property
    def lease_s(self) -> float:
        return self.settings.job_lease_s

    def send(self, *messages: tuple[str, str]) -> None:
        """Send (job name, id) messages owed (``outbox.add``) by a transaction that has
        committed, and strike their debts."""
        outbox.send(self.sessions, self.queue, *messages)
