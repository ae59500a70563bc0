"""SQL for personas, and only here."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from likeness.models import Persona, Replica


def get(session: Session, persona_id: str) -> Persona | None:
    return session.get(Persona, persona_id)


def page(session: Session, limit: int, page_number: int) -> tuple[list[Persona], int]:
    total = session.scalar(select(func.count()).select_from(Persona)) or 0
    rows = session.scalars(
        select(Persona)
        .order_by(Persona.created_at.desc(), Persona.id)
        .limit(limit)
        .offset((page_number - 1) * limit)
    )
    return list(rows), total


def live_replica(session: Session, replica_id: str) -> Replica | None:
    """A persona's default replica (read here, so personas never import replicas)."""
    row = session.get(Replica, replica_id)
    return row if row is not None and row.deleted_at is None else None
