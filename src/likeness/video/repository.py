"""SQL for videos, and only here."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, bindparam, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from likeness.models import Replica, Video


def get_live(session: Session, video_id: str) -> Video | None:
    row = session.get(Video, video_id)
    return row if row is not None and row.deleted_at is None else None


_TABLE = Video.__table__
# Built once, as replica/repository.py's: the compiled statement is found by its cache key.
_LIVE_ROW = select(_TABLE).where(_TABLE.c.id == bindparam("id"), _TABLE.c.deleted_at.is_(None))


def read_live(connection: Connection, video_id: str) -> Row[Any] | None:
    """A live video as a Core row (attributes named as the model's): what GET
    /v2/videos/{id} reads, on a bare connection."""
    return connection.execute(_LIVE_ROW, {"id": video_id}).first()


def get_any(session: Session, video_id: str) -> Video | None:
    """Live or soft-deleted: a hard delete must find both."""
    return session.get(Video, video_id)


def of_replica(session: Session, replica_id: str) -> list[Video]:
    """Every video of a replica, soft-deleted ones included."""
    return list(session.scalars(select(Video).where(Video.replica_id == replica_id)))


def page(connection: Connection, limit: int, page_number: int) -> tuple[list[Row[Any]], int]:
    """A page of live videos, newest first, as Core rows (as ``read_live``), and how many
    there are in all."""
    live = _TABLE.c.deleted_at.is_(None)
    total = connection.scalar(select(func.count()).select_from(_TABLE).where(live)) or 0
    query = (
        select(_TABLE)
        .where(live)
        .order_by(_TABLE.c.created_at.desc(), _TABLE.c.id)
        .limit(limit)
        .offset((page_number - 1) * limit)
    )
    return list(connection.execute(query).all()), total


def waiting_for(session: Session, replica_id: str) -> list[Video]:
    return list(
        session.scalars(
            select(Video).where(
                Video.replica_id == replica_id,
                Video.status == "queued",
                Video.deleted_at.is_(None),
            )
        )
    )


def unfinished() -> ColumnElement[bool]:
    """Videos still to render: the rows of the leased render job."""
    return Video.status.in_(("queued", "generating")) & Video.deleted_at.is_(None)


def waiting_for_training() -> ColumnElement[bool]:
    """Videos parked until their replica's training ends (released then, no message owed)."""
    training = select(Replica.id).where(Replica.status == "started", Replica.deleted_at.is_(None))
    return Video.replica_id.in_(training)


def live_replica(session: Session, replica_id: str) -> Replica | None:
    """The replica a video is made from (read here, so videos never import replicas)."""
    row = session.get(Replica, replica_id)
    return row if row is not None and row.deleted_at is None else None
