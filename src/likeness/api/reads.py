"""The lean read path: GET /v2/replicas/{id}, /v2/faces/{id} and /v2/videos/{id}.

These are the reads clients poll (a replica training, a video rendering), so they are
answered with as little work as the answer needs (ADR 0012). ``LeanReads`` sits in front of
the app's other middleware and routing: for a plain GET of one of these paths, with the
right key, no body and no query but ``verbose=true|false``, it checks the key (a
constant-time compare against the key's bytes, kept), reads the row through a prepared Core
``select`` on the runtime's held connection (kit/db.py) on the event loop, and sends the
JSON. No dependency graph, no session, no thread. Any other request, a bad key or an odd
query included, goes on to the routes, whose GETs call the same ``answer``: one reader, one
serialiser, one error body, so both paths send the same bytes.

The read blocks the event loop for one indexed lookup (tens of microseconds on SQLite's
local file; a loopback round trip on PostgreSQL), which costs less than the thread-pool hop
it replaces.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.engine import Connection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from likeness.auth.deps import key_matches
from likeness.errors import ApiError
from likeness.runtime import Runtime

# (runtime, connection, id, verbose) → the wire body; raises NotFound for no live row.
Reader = Callable[[Runtime, Connection, str, bool], dict[str, Any]]

# The query strings the lean path takes (FastAPI reads every other, bool spellings included).
_VERBOSE = {b"": False, b"verbose=false": False, b"verbose=true": True}


def answer(rt: Runtime, reader: Reader, item_id: str, verbose: bool) -> JSONResponse:
    """The response to a GET by id, for the route and for ``LeanReads`` alike."""
    try:
        body = rt.reads.run(lambda connection: reader(rt, connection, item_id, verbose))
    except ApiError as exc:
        return error_response(exc)
    return JSONResponse(body)


def error_response(exc: ApiError) -> JSONResponse:
    """Tavus's error body (app.py's handler answers every other ApiError with it too)."""
    return JSONResponse(exc.body(), status_code=exc.status_code)


class LeanReads:
    """ASGI middleware: answers the GETs by id it can, passes everything else on."""

    def __init__(self, app: ASGIApp, runtime: Runtime, readers: Mapping[str, Reader]) -> None:
        """``readers``: the collection's path ("/v2/videos") → its reader."""
        self.app = app
        self.runtime = runtime
        self.readers = dict(readers)
        assert runtime.settings.api_key  # build_runtime always sets one
        self.key = runtime.settings.api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            response = self._answer(scope)
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _answer(self, scope: Scope) -> JSONResponse | None:
        verbose = _VERBOSE.get(scope["query_string"])
        if verbose is None:
            return None
        # rstrip: "/v2/videos/{id}/" is the same read (app.py's _StripTrailingSlash).
        collection, _, item_id = scope["path"].rstrip("/").rpartition("/")
        reader = self.readers.get(collection)
        # Ids are short and alphanumeric; anything else (a NUL, "%2F") is the routes' to judge.
        if reader is None or not (item_id.isascii() and item_id.isalnum()):
            return None
        given: str | None = None
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                if given is None:  # the first one, as Starlette's headers.get reads it
                    given = value.decode("latin-1")
            elif name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
                return None  # a body: BodyGuard (kit/body_guard.py) reads and judges it
        if not key_matches(given, self.key):
            return None  # the route answers Tavus's 401
        return answer(self.runtime, reader, item_id, verbose)
