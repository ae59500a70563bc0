"""The queue port. Jobs are Celery tasks named ``"replica.train"``, ``"webhook.deliver"``…;
the API only sends them by name (after its transaction commits), the worker runs them.

Embedded default: kombu's SQLAlchemy transport on a SQLite file in the data directory.
Set ``LIKENESS_BROKER_URL=redis://…`` (or amqp://) to scale out.
"""

from __future__ import annotations

import contextlib
import sqlite3
from functools import cached_property
from typing import Any

from celery import Celery
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine

SQLITE_BROKER = "sqla+sqlite:///"


def make_celery(broker_url: str) -> Celery:
    app = Celery("likeness", broker=broker_url, set_as_current=False)
    if broker_url.startswith(SQLITE_BROKER):
        write_ahead_log(broker_url.removeprefix(SQLITE_BROKER))
        # Wait for the lock as the database's engine does (kombu leaves sqlite3's 5 s).
        app.conf.broker_transport_options = {"connect_args": {"timeout": 30}}
    app.conf.update(
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    return app


class JobQueue:
    def __init__(self, celery: Celery) -> None:
        self.celery = celery

    def enqueue(self, name: str, *args: Any, countdown: float | None = None) -> None:
        self.celery.send_task(name, args=list(args), countdown=countdown)

    def drop_consumed(self) -> int:
        """kombu's SQLAlchemy transport keeps every delivered message (``visible`` false)
        forever, though it never delivers one twice: delete them. Other brokers: nothing."""
        if self._broker_db is None:
            return 0
        with self._broker_db.begin() as connection:
            if not inspect(connection).has_table("kombu_message"):
                return 0
            result = connection.execute(
                text("DELETE FROM kombu_message WHERE visible = :no"), {"no": False}
            )
        return int(result.rowcount)

    @cached_property
    def _broker_db(self) -> Engine | None:
        url = str(self.celery.conf.broker_url or "")
        scheme, _, database = url.partition("+")
        if scheme not in ("sqla", "sqlalchemy"):
            return None
        return create_engine(database, connect_args={"timeout": 30} if "sqlite" in database else {})


def write_ahead_log(path: str) -> None:
    """Put the SQLite broker in WAL mode (kept in the file): a send then costs one fsync
    instead of a rollback journal's three, and the worker's poll, which takes the write lock
    every second, no longer blocks a send (benchmarks/api.py: creates)."""
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
