"""SQL for callbacks and their delivery log, and only here."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from likeness.models import WebhookAttempt, WebhookEvent


def attempts_for(session: Session, subject_id: str) -> list[WebhookAttempt]:
    """Every delivery attempt of the callbacks about ``subject_id`` (a replica or video id),
    oldest first."""
    query = (
        select(WebhookAttempt)
        .join(WebhookEvent, WebhookEvent.id == WebhookAttempt.event_id)
        .where(WebhookEvent.subject_id == subject_id)
        .order_by(WebhookAttempt.id)
    )
    return list(session.scalars(query))


def cancel_pending(session: Session, subject_id: str) -> None:
    """A deleted replica or video is announced no more: its undelivered callbacks stop."""
    session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.subject_id == subject_id, WebhookEvent.status == "pending")
        .values(status="cancelled")
    )


def forget(session: Session, subject_id: str) -> None:
    """A hard delete: every callback about the subject, and its delivery log, goes."""
    events = select(WebhookEvent.id).where(WebhookEvent.subject_id == subject_id)
    session.execute(delete(WebhookAttempt).where(WebhookAttempt.event_id.in_(events)))
    session.execute(delete(WebhookEvent).where(WebhookEvent.subject_id == subject_id))
