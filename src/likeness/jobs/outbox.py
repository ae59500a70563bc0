"""The outbox: a job message is owed in the same transaction that makes its job due, and paid
once the broker has accepted one sent after that commit. A process killed between its commit
and its send (the API, or a worker ending a job) leaves the debt written down; the sweep pays
it. Messages still waiting in the broker were paid already, so nothing is sent twice.

A message is ``(job name, row id)``. The producer of a due row calls ``add`` in its
transaction (a new replica or video, a callback, a video released when its training ended,
a job the sweep found lost); whoever sends it after commit calls ``send``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.orm import Session, sessionmaker

from likeness.jobs.queue import JobQueue
from likeness.kit.clock import utcnow
from likeness.kit.db import transaction
from likeness.models import OutboxMessage

Message = tuple[str, str]


def add(session: Session, *messages: Message) -> list[Message]:
    """Owe ``messages``, in the caller's transaction (nothing is owed if it rolls back)."""
    now = utcnow()
    session.add_all(OutboxMessage(job=job, row_id=row_id, owed_at=now) for job, row_id in messages)
    return list(messages)


def send(sessions: sessionmaker[Session], queue: JobQueue, *messages: Message) -> None:
    """Send ``messages`` (after the transaction that owed them committed), then strike every
    debt for them written before this send began: the message sent now arrives after that
    commit. If the broker refuses, the debts stay and the sweep pays them later."""
    if not messages:
        return
    began = utcnow()
    for job, row_id in dict.fromkeys(messages):
        queue.enqueue(job, row_id)
    with transaction(sessions) as session:
        session.execute(
            delete(OutboxMessage)
            .where(
                tuple_(OutboxMessage.job, OutboxMessage.row_id).in_(list(messages)),
                OutboxMessage.owed_at <= began,
            )
            .execution_options(synchronize_session=False)
        )


def overdue(session: Session, now: datetime, grace_s: float) -> list[Message]:
    """Messages owed for more than ``grace_s``: their sender died (or the broker refused).
    Takes each with a compare-and-set (so two sweeping workers never both send it) that
    restarts its grace, and returns them; the caller ``send``s them after commit."""
    cutoff = now - timedelta(seconds=grace_s)
    rows = session.execute(
        select(OutboxMessage.id, OutboxMessage.job, OutboxMessage.row_id, OutboxMessage.owed_at)
        .where(OutboxMessage.owed_at < cutoff)
        .order_by(OutboxMessage.id)
    ).all()
    taken: dict[Message, None] = {}
    retaken_at = utcnow()  # the real time: ``send`` compares it with the real time too
    for entry_id, job, row_id, owed_at in rows:
        result = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == entry_id, OutboxMessage.owed_at == owed_at)
            .values(owed_at=retaken_at)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            taken[(job, row_id)] = None
    return list(taken)


def owed(session: Session) -> list[Message]:
    """Every message owed now, oldest first."""
    rows = session.execute(
        select(OutboxMessage.job, OutboxMessage.row_id).order_by(OutboxMessage.id)
    )
    return [(job, row_id) for job, row_id in rows]
