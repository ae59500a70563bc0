"""One lease helper for every leased row: a training, a render, a callback delivery (and next
a live conversation). The row is the state of record; the broker only carries wake-ups.

``lease_expires_at`` says who must touch the row next, and by when:

- NULL: nobody holds it; its message waits in the broker (or it waits for another job, e.g.
  a video for its replica's training). A queued job is not lost: only when the broker holds
  no message for a row nobody touched for a while (a worker took the message and died
  before its ``acquire``) does ``sweep_unclaimed`` re-send it, once.
- a time: a live holder renews it (``Claim``) while the job runs, or it is the moment a
  scheduled retry is due (``Claim.retry_at``), the retry's message sitting in a worker's
  memory until then. Either way, if the time passes by more than a grace and the row is still
  unfinished, its holder died with it: ``sweep`` clears the lease and the job is re-sent, once
  (a compare-and-set, so two sweeping workers never both re-send it).

``acquire`` counts an attempt; the job gives up after ``job_max_attempts``. Every write made
under a claim is a compare-and-set on the lease value the claim last wrote, so a holder that
lost its lease (its heartbeat missed a whole lease and someone else took the job) can no
longer change the row: two copies of a job are harmless.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Integer, Text, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.sql import ColumnElement

from likeness.jobs.heartbeat import Heartbeat
from likeness.kit.clock import utcnow
from likeness.kit.db import transaction

log = logging.getLogger(__name__)


class Leased:
    """The columns of a leased row (mixed into its model)."""

    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Why the last run stopped without finishing (a dead worker, an unexpected error): a
    # one-line summary, safe to show (``summary``), for the give-up message.
    last_error: Mapped[str | None] = mapped_column(Text)


@dataclass(frozen=True)
class Kind:
    """One kind of leased job: its queue name, its table, which rows still have work, and
    which of those wait for another job with no message owed (a video for its training)."""

    job: str
    model: type[Leased]
    unfinished: Callable[[], ColumnElement[bool]]
    waiting: Callable[[], ColumnElement[bool]] | None = None

    @property
    def id(self) -> Any:
        return self.model.id  # type: ignore[attr-defined]  # every leased model has an id


class LeaseLost(Exception):
    """The claim is gone (the row finished, was deleted, or another worker took it)."""


def acquire(session: Session, kind: Kind, row_id: str, lease_s: float) -> datetime | None:
    """Claim an unfinished row nobody holds (or whose holder died) and count an attempt.
    Returns the lease written (the claim's token), None when the row is not claimable."""
    now = utcnow()
    until = now + timedelta(seconds=lease_s)
    model = kind.model
    result = session.execute(
        update(model)
        .where(
            kind.id == row_id,
            kind.unfinished(),
            or_(model.lease_expires_at.is_(None), model.lease_expires_at < now),
        )
        .values(lease_expires_at=until, attempts=model.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    return until if result.rowcount else None  # type: ignore[attr-defined]


def sweep(session: Session, kind: Kind, now: datetime, grace_s: float) -> list[str]:
    """Unfinished rows whose lease lapsed more than ``grace_s`` ago: their holder died (or
    the worker holding their scheduled retry did). Clears each lease (so it is re-sent once)
    and returns their ids; the caller re-sends them after commit."""
    model = kind.model
    cutoff = now - timedelta(seconds=grace_s)
    lapsed = session.execute(
        select(kind.id, model.lease_expires_at).where(
            kind.unfinished(), model.lease_expires_at < cutoff
        )
    ).all()
    found = []
    for row_id, expired in lapsed:
        died = f"its worker died (its lease ran out at {expired:%Y-%m-%d %H:%M:%S} UTC)"
        result = session.execute(
            update(model)
            .where(kind.id == row_id, model.lease_expires_at == expired)
            .values(lease_expires_at=None, last_error=died)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            found.append(str(row_id))
    return found


def sweep_unclaimed(
    session: Session, kind: Kind, now: datetime, bound_s: float, exempt: set[str]
) -> list[str]:
    """Unfinished rows nobody holds and nobody touched for more than ``bound_s`` (a job's
    ``acquire`` is its first step, and it touches the row), none waiting for another job,
    and none in ``exempt``: the ids whose message the broker still holds or the outbox still
    owes. Their message was taken by a worker that died before claiming them. Marks each
    with a compare-and-set on its last touch (a worker claiming it meanwhile wins, and two
    sweepers never both re-send it) and returns their ids; the caller re-sends them."""
    model = kind.model
    touched = model.updated_at  # type: ignore[attr-defined]  # every leased model has it
    query = select(kind.id, touched).where(
        kind.unfinished(),
        model.lease_expires_at.is_(None),
        touched < now - timedelta(seconds=bound_s),
    )
    if kind.waiting is not None:
        query = query.where(~kind.waiting())
    found = []
    for row_id, seen in session.execute(query).all():
        if str(row_id) in exempt:
            continue
        result = session.execute(
            update(model)
            .where(kind.id == row_id, model.lease_expires_at.is_(None), touched == seen)
            .values(last_error="its message was taken by a worker that stopped before starting it")
            .execution_options(synchronize_session=False)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            found.append(str(row_id))
    return found


class Claim:
    """A held lease on one row: write under it, keep it alive, retry later, or let it go."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        kind: Kind,
        row_id: str,
        until: datetime,
        lease_s: float,
    ) -> None:
        self.kind, self.row_id, self.lease_s = kind, row_id, lease_s
        self._sessions = sessions
        self._until: datetime | None = until
        self._lock = threading.Lock()  # the heartbeat thread and the job both write

    @property
    def held(self) -> bool:
        return self._until is not None

    def update(self, **values: Any) -> bool:
        """Write ``values`` (column → value or SQL expression) and renew the lease, if the
        claim still holds and the row is unfinished. False once the claim is lost."""
        with self._lock:
            if self._until is None:
                return False
            until = utcnow() + timedelta(seconds=self.lease_s)
            if not self._execute_now(self._until, {**values, "lease_expires_at": until}):
                self._until = None
                return False
            self._until = until
            return True

    def renew(self) -> None:
        if self.held and not self.update():  # said once; the job stops at its next check
            log.warning("%s %s: lease lost", self.kind.job, self.row_id)

    def check(self) -> None:
        """Raise ``LeaseLost`` if the claim is gone (between steps of a long job)."""
        if not self.update():
            raise LeaseLost(self.row_id)

    def kept_alive(self) -> Heartbeat:
        """A heartbeat renewing the lease four times a lease while the job runs."""
        return Heartbeat(self.renew, self.lease_s / 4, f"lease-{self.row_id}")

    def retry_at(self, due: datetime, last_error: str) -> bool:
        """Hold the row until its retry is due (the retry's message then waits in a worker's
        memory; if that worker dies, the sweep finds the lapsed lease). Ends the claim."""
        with transaction(self._sessions) as session:
            return self.finish(session, lease_expires_at=due, last_error=last_error)

    def release(self) -> bool:
        """Let the row go without finishing it (its next message is in the broker, or none
        is needed: it waits for another job, or it was deleted)."""
        with transaction(self._sessions) as session:
            return self.finish(session)

    def finish(self, session: Session, **values: Any) -> bool:
        """End the claim in the caller's transaction, before it writes the final state (by
        default the lease is cleared; ``values`` may instead hold the row until a retry).
        False when the claim was lost: then the caller writes nothing, another run owns it."""
        with self._lock:
            token, self._until = self._until, None
            if token is None:
                return False
            return self._execute(session, token, values or {"lease_expires_at": None})

    def _execute_now(self, token: datetime, values: dict[str, Any]) -> bool:
        with transaction(self._sessions) as session:
            return self._execute(session, token, values)

    def _execute(self, session: Session, token: datetime, values: dict[str, Any]) -> bool:
        """A compare-and-set on the lease this claim wrote last, for an unfinished row only
        (a row deleted meanwhile is neither renewed nor finished: nothing is announced)."""
        model = self.kind.model
        result = session.execute(
            update(model)
            .where(
                self.kind.id == self.row_id,
                model.lease_expires_at == token,
                self.kind.unfinished(),
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def summary(error: BaseException | str, data_dir: Path, limit: int = 300) -> str:
    """One line about an error, safe to store and show: no traceback, and no path outside
    the data directory (paths inside it are shown relative to it)."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    text = " ".join(text.split())
    root = str(data_dir).rstrip("/") + "/"
    text = text.replace(root, "")
    text = _ABSOLUTE_PATH.sub(lambda m: "…/" + m.group(0).rsplit("/", 1)[-1], text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# An absolute path: a slash that starts a word, then more path (not a URL's "//host/…").
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.])/(?!/)[^\s'\",;:)]+")
