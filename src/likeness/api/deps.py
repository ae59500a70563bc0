"""The request dependencies every router shares: the runtime and a read session.

Writes open their own ``transaction(rt.sessions)`` in the endpoint instead of a session
dependency: a job is enqueued only after its row is committed, and that order has to be
visible in the endpoint (STYLE habit 4).

The dependencies are ``async`` although they do no awaiting: FastAPI runs a plain ``def``
dependency in its thread pool, a hop per dependency per request that cost more CPU than
the work itself (benchmarks/api.py). They only read attributes, so the event loop runs them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from likeness.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(rt: RuntimeDep) -> AsyncIterator[Session]:
    """A session for reading, closed when the request is done (nothing is committed).
    Making one does no I/O: it connects on its first query, in the endpoint's thread."""
    session = rt.sessions()
    try:
        yield session
    finally:
        if rt.db.dialect.name == "sqlite":  # the pool's rollback is a call into a local file
            session.close()
        else:  # a round trip to the server: not on the event loop
            await run_in_threadpool(session.close)


SessionDep = Annotated[Session, Depends(get_session)]


def api_key(rt: Runtime) -> str:
    """The key that signs capability links (build_runtime always sets one)."""
    assert rt.settings.api_key
    return rt.settings.api_key
