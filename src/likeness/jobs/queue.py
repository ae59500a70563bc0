"""The queue port. Jobs are Celery tasks named ``"replica.train"``, ``"webhook.deliver"``…;
the API only sends them by name (after its transaction commits), the worker runs them.

Embedded default: kombu's SQLAlchemy transport on a SQLite file in the data directory.
Set ``LIKENESS_BROKER_URL=redis://…`` (or amqp://) to scale out.
"""

from __future__ import annotations

from typing import Any

from celery import Celery


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
