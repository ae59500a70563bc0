"""SQL for conversations, and only here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import false, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from likeness.models import Conversation, Persona, Replica


def get_live(session: Session, conversation_id: str) -> Conversation | None:
    row = session.get(Conversation, conversation_id)
    return row if row is not None and row.deleted_at is None else None


def get_any(session: Session, conversation_id: str) -> Conversation | None:
    """Live or soft-deleted: a hard delete must find both."""
    return session.get(Conversation, conversation_id)


def page(
    session: Session, limit: int, page_number: int, status: str | None
) -> tuple[list[Conversation], int]:
    query = select(Conversation).where(Conversation.deleted_at.is_(None))
    if status is not None:
        query = query.where(Conversation.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(Conversation.created_at.desc(), Conversation.id)
        .limit(limit)
        .offset((page_number - 1) * limit)
    )
    return list(rows), total


def unfinished() -> ColumnElement[bool]:
    """Conversations still going: the rows a media worker leases."""
    return (Conversation.status == "active") & Conversation.deleted_at.is_(None)


def unserved(session: Session) -> list[Conversation]:
    """Active conversations no media worker serves (nobody joined yet), test ones aside."""
    rows = session.scalars(
        select(Conversation).where(
            unfinished(), Conversation.lease_expires_at.is_(None), Conversation.test_mode.is_(False)
        )
    )
    return list(rows)


_CAPACITY_LOCK = 0x6C6B6E73  # PostgreSQL's advisory lock key for the capacity check


def lock_capacity(session: Session) -> None:
    """Hold creates off until this transaction ends, so the count of active conversations and
    the insert after it are one step (two creates at once would both pass the check
    otherwise). PostgreSQL: a transaction-scoped advisory lock. SQLite: its one write lock,
    taken now by an update of no row (pysqlite begins before it, and a write transaction's
    first statement waits for the lock and then reads the newest data)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_CAPACITY_LOCK)))
    else:
        session.execute(update(Conversation).where(false()).values(status=Conversation.status))


def active_count(session: Session) -> int:
    return session.scalar(select(func.count()).where(unfinished())) or 0


def end_if_active(session: Session, conversation_id: str, reason: str, now: datetime) -> bool:
    """active → ended, once: a compare-and-set, so /end, a media worker and the sweep never
    end one conversation twice."""
    result = session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id, Conversation.status == "active")
        .values(status="ended", shutdown_reason=reason, ended_at=now, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def live_replica(session: Session, replica_id: str) -> Replica | None:
    """The replica a conversation shows (read here, so conversations never import replicas)."""
    row = session.get(Replica, replica_id)
    return row if row is not None and row.deleted_at is None else None


def persona(session: Session, persona_id: str) -> Persona | None:
    """The persona a conversation follows (read here: conversations never import personas)."""
    return session.get(Persona, persona_id)
