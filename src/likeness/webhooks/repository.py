"""SQL for callbacks and their delivery log, and only here."""

from __future__ import annotations

from sqlalchemy import select
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
