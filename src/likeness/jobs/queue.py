"""The queue port. Jobs are Celery tasks named ``"replica.train"``, ``"webhook.deliver"``…;
the API only sends them by name (after its transaction commits), the worker runs them.

Embedded default: kombu's SQLAlchemy transport on a SQLite file in the data directory.
Set ``LIKENESS_BROKER_URL=redis://…`` (or amqp://) to scale out.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from celery import Celery
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine


def make_celery(broker_url: str) -> Celery:
    app = Celery("likeness", broker=broker_url, set_as_current=False)
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
