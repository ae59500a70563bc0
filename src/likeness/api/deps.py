"""The request dependencies every router shares: the runtime and a read session.

Writes open their own ``transaction(rt.sessions)`` in the endpoint instead of a session
dependency: a job is enqueued only after its row is committed, and that order has to be
visible in the endpoint (STYLE habit 4)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from likeness.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(rt: RuntimeDep) -> Iterator[Session]:
    """A session for reading, closed when the request is done (nothing is committed)."""
    with rt.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def api_key(rt: Runtime) -> str:
    """The key that signs capability links (build_runtime always sets one)."""
    assert rt.settings.api_key
    return rt.settings.api_key
