"""SQL for replicas, and only here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, bindparam, func, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from likeness.models import Replica


def get_live(session: Session, replica_id: str) -> Replica | None:
    row = session.get(Replica, replica_id)
    return row if row is not None and row.deleted_at is None else None


_TABLE = Replica.__table__
# Built once: SQLAlchemy then finds its compiled form by the statement's cache key alone
# (building the select anew for each read cost more than running it).
_LIVE_ROW = select(_TABLE).where(_TABLE.c.id == bindparam("id"), _TABLE.c.deleted_at.is_(None))


def read_live(connection: Connection, replica_id: str) -> Row[Any] | None:
    """A live replica as a Core row (attributes named as the model's): what GET
    /v2/replicas/{id} reads, on a bare connection, without the ORM's session and identity map.
    """
    return connection.execute(_LIVE_ROW, {"id": replica_id}).first()


def get_any(session: Session, replica_id: str) -> Replica | None:
    """Live or soft-deleted: a hard delete must find both."""
    return session.get(Replica, replica_id)


def page(
    connection: Connection, limit: int, page_number: int, ids: Sequence[str] | None
) -> tuple[list[Row[Any]], int]:
    """A page of live replicas, newest first, as Core rows (as ``read_live``), and how many
    there are in all."""
    live: ColumnElement[bool] = _TABLE.c.deleted_at.is_(None)
    if ids is not None:
        live = live & _TABLE.c.id.in_(ids)
    total = connection.scalar(select(func.count()).select_from(_TABLE).where(live)) or 0
    query = (
        select(_TABLE)
        .where(live)
        .order_by(_TABLE.c.created_at.desc(), _TABLE.c.id)
        .limit(limit)
        .offset((page_number - 1) * limit)
    )
    return list(connection.execute(query).all()), total


def unfinished() -> ColumnElement[bool]:
    """Replicas whose training still has work to do: the rows of the leased training job."""
    return (Replica.status == "started") & Replica.deleted_at.is_(None)


def others_using(session: Session, url: str, replica_id: str) -> bool:
    """Does any other live replica train from this URL (or use it as its consent video)?"""
    query = select(func.count()).where(
        or_(Replica.train_video_url == url, Replica.consent_video_url == url),
        Replica.id != replica_id,
        Replica.deleted_at.is_(None),
    )
    return bool(session.scalar(query))
