"""The ``webhook.deliver`` job: one attempt per run, re-enqueued with backoff until it lands
or the schedule (settings.webhook_retry_delays_s) runs out."""

from __future__ import annotations

from likeness.jobs.context import JobContext
from likeness.webhooks.service import JOB, deliver


def deliver_job(ctx: JobContext, event_id: str) -> None:
    settings = ctx.settings
    assert settings.webhook_secret
    outcome = deliver(
        ctx.sessions,
        event_id,
        secret=settings.webhook_secret,
        retry_delays_s=settings.webhook_retry_delays_s,
        timeout_s=settings.webhook_timeout_s,
        allow_private=settings.allow_private_urls,
        lease_s=ctx.lease_s,
    )
    if outcome.retry_in_s is not None:
        ctx.queue.enqueue(JOB, event_id, countdown=outcome.retry_in_s)
