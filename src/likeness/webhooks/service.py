"""Callbacks: record an event (inside the caller's transaction), deliver it in a job, log
every attempt. A dead callback URL never affects the replica or video it reports on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from likeness.kit import ids
from likeness.kit.clock import utcnow_aware
from likeness.kit.db import transaction
from likeness.kit.safe_url import CheckedTransport, Unresolvable, UnsafeUrl, check_url
from likeness.models import WebhookAttempt, WebhookEvent
from likeness.webhooks.signing import body_of, signed_headers

JOB = "webhook.deliver"


def record(session: Session, url: str, payload: dict[str, Any], subject_id: str) -> str:
    """Add a pending callback to the session; enqueue ``webhook.deliver`` after commit."""
    event = WebhookEvent(
        id=ids.webhook_message_id(), url=url, payload=payload, subject_id=subject_id
    )
    session.add(event)
    return event.id


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
) -> Outcome:
    """One delivery attempt, recorded. Says whether and when to try again: never for a URL
    refused as private (no later attempt would be let through either)."""
    with transaction(sessions) as session:
        event = session.get(WebhookEvent, event_id)
        if event is None or event.status != "pending":
            return Outcome(delivered=event is not None, retry_in_s=None)
        url, payload, attempt = event.url, dict(event.payload), event.attempts + 1

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
    with transaction(sessions) as session:
        session.add(
            WebhookAttempt(event_id=event_id, attempt=attempt, status_code=status_code, error=error)
        )
        event = session.get(WebhookEvent, event_id)
        assert event is not None
        event.attempts = attempt
        if delivered:
            event.status = "delivered"
        elif give_up:
            event.status = "failed"
    if delivered or give_up:
        return Outcome(delivered=delivered, retry_in_s=None)
    return Outcome(delivered=False, retry_in_s=retry_delays_s[attempt - 1])
