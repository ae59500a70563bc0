"""Database plumbing: the declarative base (with a naming convention for Alembic), engines
and sessions. SQLite gets WAL and a busy timeout so the API and the worker can share it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# The last page a list may ask for: with at most 1,000 rows a page the offset stays far inside
# a 64-bit integer (SQLite raises OverflowError past it, PostgreSQL "bigint out of range").
MAX_PAGE = 1_000_000
T = TypeVar("T")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session


def after_commit(session: Session, action: Callable[[], None]) -> None:
    """Run ``action`` once the session's transaction commits (never if it rolls back). A
    delete removes files this way: a job that finds its files gone finds its row gone too."""
    event.listen(session, "after_commit", lambda _session: action(), once=True)


class HeldConnection:
    """One connection, held for the life of the process and lent to short reads one at a
    time, in autocommit: a read takes no pool checkout, no ping, and (on PostgreSQL) no BEGIN
    or ROLLBACK round trip, only its query. The API's lean reads run on it from the event
    loop (api/reads.py), where nothing else runs while a read does; the lock only matters
    when two loops share a runtime (a test client beside a server thread).

    A read must fetch what it needs before returning (``.first()``, ``.all()``): a result
    left open would hold SQLite's read snapshot and the lock.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._connection: Connection | None = None
        self._lock = threading.Lock()

    def run(self, read: Callable[[Connection], T]) -> T:
        with self._lock:
            if self._connection is None:
                self._connection = self._engine.connect()
            connection = self._connection
            try:
                return read(connection)
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                # The server closed it (a restart): SQLAlchemy reconnects on the next use,
                # once its transaction is rolled back. One more try, as pool_pre_ping would.
                connection.rollback()
                return read(connection)
            finally:
                connection.rollback()  # ends SQLAlchemy's own transaction: nothing on the wire

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
