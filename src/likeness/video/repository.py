"""SQL for videos, and only here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from likeness.kit.clock import utcnow
from likeness.models import Video


def get_live(session: Session, video_id: str) -> Video | None:
    row = session.get(Video, video_id)
    return row if row is not None and row.deleted_at is None else None


def get_any(session: Session, video_id: str) -> Video | None:
    """Live or soft-deleted: a hard delete must find both."""
    return session.get(Video, video_id)


def of_replica(session: Session, replica_id: str) -> list[Video]:
    """Every video of a replica, soft-deleted ones included."""
    return list(session.scalars(select(Video).where(Video.replica_id == replica_id)))


def page(session: Session, limit: int, page_number: int) -> tuple[list[Video], int]:
    query = select(Video).where(Video.deleted_at.is_(None))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(Video.created_at.desc(), Video.id)
        .limit(limit)
        .offset((page_number - 1) * limit)
    )
    return list(rows), total


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


def acquire_lease(session: Session, video_id: str, until: datetime) -> bool:
    now = utcnow()
    result = session.execute(
        update(Video)
        .where(
            Video.id == video_id,
            Video.status.in_(("queued", "generating")),
            Video.deleted_at.is_(None),
            or_(Video.lease_expires_at.is_(None), Video.lease_expires_at < now),
        )
        .values(lease_expires_at=until, attempts=Video.attempts + 1, updated_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def stale(session: Session, now: datetime) -> list[Video]:
    return list(
        session.scalars(
            select(Video).where(
                Video.status == "generating",
                Video.deleted_at.is_(None),
                Video.lease_expires_at < now,
            )
        )
    )
