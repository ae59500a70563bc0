"""The queue port. Jobs are Celery tasks named ``"replica.train"``, ``"webhook.deliver"``…;
the API only sends them by name (after its transaction commits), the worker runs them.

Embedded default: kombu's SQLAlchemy transport on a SQLite file in the data directory.
Set ``LIKENESS_BROKER_URL=redis://…`` (or amqp://) to scale out.
"""

from __future__ import annotations

import base64
import contextlib
import json
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

    def held(self) -> set[tuple[str, str]] | None:
        """(job name, first argument) of every message the broker still holds: waiting to be
        taken, or (Redis) taken and not yet acknowledged, which Redis gives back after its
        visibility timeout. A message kombu's SQLAlchemy transport handed out (``visible``
        false) is held by nobody: that transport never gives it back. None when this broker
        cannot be read (AMQP): then no unclaimed row may be judged lost."""
        url = str(self.celery.conf.broker_url or "")
        if self._broker_db is not None:
            with self._broker_db.connect() as connection:
                if not inspect(connection).has_table("kombu_message"):
                    return set()
                rows = connection.execute(
                    text("SELECT payload FROM kombu_message WHERE visible = :yes"), {"yes": True}
                )
                return {_job_of(json.loads(payload)) for (payload,) in rows}
        if url.startswith(("redis://", "rediss://")):
            return self._held_by_redis(url)
        return None

    def _held_by_redis(self, url: str) -> set[tuple[str, str]]:
        """The queue lists and kombu's ``unacked`` hash (values: [message, exchange, key])."""
        import redis  # only with a Redis broker

        client = redis.Redis.from_url(url)
        try:
            queues = {self.celery.conf.task_default_queue or "celery"}
            payloads = [m for q in queues for m in client.lrange(q, 0, -1)]
            unacked = client.hvals("unacked")
            held = {_job_of(json.loads(p)) for p in payloads}
            held |= {_job_of(json.loads(v)[0]) for v in unacked}
            return held
        finally:
            client.close()

    @cached_property
    def _broker_db(self) -> Engine | None:
        url = str(self.celery.conf.broker_url or "")
        scheme, _, database = url.partition("+")
        if scheme not in ("sqla", "sqlalchemy"):
            return None
        return create_engine(database, connect_args={"timeout": 30} if "sqlite" in database else {})


def _job_of(message: dict[str, Any]) -> tuple[str, str]:
    """(task name, its first argument) of a kombu message carrying a Celery task (protocol 2:
    the body is ``[args, kwargs, embed]``, base64-encoded JSON)."""
    body = message["body"]
    if message.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    args = json.loads(body)[0]
    return str(message["headers"]["task"]), str(args[0]) if args else ""


def write_ahead_log(path: str) -> None:
    """Put the SQLite broker in WAL mode (kept in the file): a send then costs one fsync
    instead of a rollback journal's three, and the worker's poll, which takes the write lock
    every second, no longer blocks a send (benchmarks/api.py: creates)."""
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
