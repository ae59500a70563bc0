"""The ``webhook.deliver`` job: one attempt per run, re-enqueued with backoff until it lands
or the schedule (settings.webhook_retry_delays_s) runs out."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from likeness.config import Settings
from likeness.jobs.queue import JobQueue
from likeness.webhooks.service import JOB, deliver


def deliver_job(
    sessions: sessionmaker[Session], settings: Settings, queue: JobQueue, event_id: str
) -> None:
    assert settings.webhook_secret
    outcome = deliver(
        sessions,
        event_id,
        secret=settings.webhook_secret,
        retry_delays_s=settings.webhook_retry_delays_s,
        timeout_s=settings.webhook_timeout_s,
        allow_private=settings.allow_private_urls,
    )
    if outcome.retry_in_s is not None:
        queue.enqueue(JOB, event_id, countdown=outcome.retry_in_s)
