"""Callbacks: record an event (inside the caller's transaction), deliver it in a job, log
every attempt. A dead callback URL never affects the replica or video it reports on."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from likeness.jobs import lease, outbox
from likeness.jobs.queue import JobQueue
from likeness.kit import ids
from likeness.kit.clock import utcnow, utcnow_aware
from likeness.kit.db import transaction
from likeness.kit.safe_url import CheckedTransport, Unresolvable, UnsafeUrl, check_url
from likeness.models import WebhookAttempt, WebhookEvent
from likeness.webhooks.signing import body_of, signed_headers

log = logging.getLogger(__name__)
JOB = "webhook.deliver"
DELIVERY = lease.Kind(JOB, WebhookEvent, lambda: WebhookEvent.status == "pending")


def record(session: Session, url: str, payload: dict[str, Any], subject_id: str) -> str:
    """Add a pending callback to the session; enqueue ``webhook.deliver`` after commit."""
    event = WebhookEvent(
        id=ids.webhook_message_id(), url=url, payload=payload, subject_id=subject_id
    )
    session.add(event)
    outbox.add(session, (JOB, event.id))
    return event.id


def send(sessions: sessionmaker[Session], queue: JobQueue, event_ids: list[str]) -> None:
    """After the commit that recorded them: send the callbacks and strike their debts. If the
    broker refuses, they stay owed (``record``) and the sweep sends them."""
    try:
        outbox.send(sessions, queue, *[(JOB, event_id) for event_id in event_ids])
    except Exception:
        log.exception("could not enqueue webhooks %s", event_ids)


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    retry_in_s: float | None  # None: give up (delivered, or out of attempts)


def deliver(
    sessions: sessionmaker[Session],
    event_id: str,
    *,
    secret: str,
    retry_delays_s: list[float],
    timeout_s: float,
    allow_private: bool,
    lease_s: float = 60.0,
) -> Outcome:
    """One delivery attempt, under a lease (so a worker dying mid-way or holding the retry
    loses nothing), recorded. Says whether and when to try again: never for a URL refused as
    private (no later attempt would be let through either)."""
    lease_s = max(lease_s, 3 * timeout_s)  # one POST never outlives its claim
    with transaction(sessions) as session:
        until = lease.acquire(session, DELIVERY, event_id, lease_s)
        event = session.get(WebhookEvent, event_id)
        if until is None or event is None:
            delivered = event is not None and event.status == "delivered"
            return Outcome(delivered=delivered, retry_in_s=None)
        url, payload, attempt = event.url, dict(event.payload), event.attempts
    claim = lease.Claim(sessions, DELIVERY, event_id, until, lease_s)

    status_code: int | None = None
    error: str | None = None
    refused = False
    try:
        check_url(url, allow_private=allow_private)
        body = body_of(payload)
        headers = signed_headers(secret, event_id, utcnow_aware(), body)
        # The transport checks the address each connection reaches (DNS rebinding).
        transport = CheckedTransport(allow_private=allow_private)
        with httpx.Client(timeout=timeout_s, transport=transport) as client:
            response = client.post(url, content=body, headers=headers)
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
    except Unresolvable as exc:
        error = str(exc)  # DNS may answer later
    except UnsafeUrl as exc:
        error, refused = f"refused: {exc}", True
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"

    delivered = error is None
    give_up = refused or (not delivered and attempt > len(retry_delays_s))
    retry_in_s = None if delivered or give_up else retry_delays_s[attempt - 1]
    with transaction(sessions) as session:
        if session.get(WebhookEvent, event_id) is None:  # its subject was hard-deleted meanwhile
            return Outcome(delivered=delivered, retry_in_s=None)
        session.add(
            WebhookAttempt(event_id=event_id, attempt=attempt, status_code=status_code, error=error)
        )
        if retry_in_s is None:
            if claim.finish(session):
                event = session.get(WebhookEvent, event_id)
                assert event is not None
                event.status = "delivered" if delivered else "failed"
        else:  # held until the retry is due: if its message is lost, the sweep re-sends it
            due = utcnow() + timedelta(seconds=retry_in_s)
            claim.finish(session, lease_expires_at=due, last_error=error)
    return Outcome(delivered=delivered, retry_in_s=retry_in_s)
