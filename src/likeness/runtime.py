"""The composition root: settings → database, storage and queue, built once per process and
shared by the API (app.py), the worker (worker.py) and the CLI."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from likeness.config import Settings
from likeness.jobs.queue import JobQueue, make_celery
from likeness.kit.db import HeldConnection, make_engine, make_sessionmaker
from likeness.kit.migrate import upgrade
from likeness.storage.base import BlobStore
from likeness.storage.local import LocalBlobStore
from likeness.video import service as videos


@dataclass
class Runtime:
    settings: Settings
    db: Engine
    sessions: sessionmaker[Session]
    storage: BlobStore
    queue: JobQueue
    reads: HeldConnection  # the API's lean reads by id (api/reads.py)

    def close(self) -> None:
        self.reads.close()
        self.db.dispose()

    def purge_videos_of(self, session: Session, replica_id: str) -> None:
        """Hard-deleting a replica takes its videos along (wired here: features never
        import each other)."""
        videos.purge_of_replica(session, self.storage, replica_id)


def build_runtime(settings: Settings, migrate: bool = True) -> Runtime:
    data = settings.resolved_data_dir
    owner_only(data)
    settings = settings.ensure_secrets()
    if migrate:
        upgrade(settings.resolved_database_url)
    db = make_engine(settings.resolved_database_url)
    return Runtime(
        settings=settings,
        db=db,
        sessions=make_sessionmaker(db),
        storage=LocalBlobStore(data / "files"),
        queue=JobQueue(make_celery(settings.resolved_broker_url)),
        reads=HeldConnection(db),
    )


def owner_only(data: Path) -> None:
    """The data directory holds people's faces and voices: only its owner may read it. The
    folder is made (or tightened to) 0700, and this process creates every file from here on
    owner-only (umask 077: the database and its journal, media, temp files), so a copy moved
    out of the folder stays private too."""
    os.umask(0o077)
    data.mkdir(parents=True, exist_ok=True)
    data.chmod(0o700)


def keep_temp_files_under(folder: Path) -> None:
    """Spooled uploads and other temp files go under the data dir, not the system's /tmp."""
    folder.mkdir(exist_ok=True)
    os.environ["TMPDIR"] = str(folder)
    tempfile.tempdir = str(folder)
