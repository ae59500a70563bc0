"""BodyGuard: an ASGI middleware that reads a request's body before the app does, so that
no route can be made to hold more than ``max_bytes`` of it, and that refuses JSON whose text
cannot be stored or sent back: a lone UTF-16 surrogate such as ``"\\ud800"`` is valid JSON
but not Unicode text (UTF-8 cannot encode it), PostgreSQL's text refuses NUL, and NaN or
Infinity cannot be written back as JSON; each would fail later, in the database or the
response, as a 500.

A URL whose path or query holds a NUL is refused for the same reason. Bodies sent to paths
under ``exempt`` (the streamed multipart uploads, which keep their own limit) pass untouched.
Refusals are Tavus-shaped: ``{"error": m, "message": m}``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Deeper JSON is refused: nothing we take nests past a few levels, and the standard library's
# encoder (used when storing JSON columns) recurses once per level.
MAX_DEPTH = 32


class BodyGuard:
    def __init__(self, app: ASGIApp, max_bytes: int, exempt: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\0" in scope["path"] or "%00" in scope["query_string"].decode("latin-1"):
            await _refuse(scope, receive, send, 400, "The URL holds a NUL character (%00)")
            return
        if scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await _refuse(scope, receive, send, 413, self._too_large())
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:  # chunked, or a Content-Length that lied
                await _refuse(scope, receive, send, 413, self._too_large())
                return
            if not message.get("more_body", False):
                break
        if "json" in headers.get("content-type", "json"):  # FastAPI reads no other as JSON
            problem = _json_problem(bytes(body))
            if problem is not None:
                await _refuse(scope, receive, send, 400, problem)
                return
        await self.app(scope, _replay(bytes(body), receive), send)

    def _too_large(self) -> str:
        return f"The request body is larger than the limit of {self.max_bytes} bytes"


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # the app waits here for the client to hang up
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


def _json_problem(body: bytes) -> str | None:
    """What no route could store or send back, in words; None when there is nothing (or it
    is not JSON at all: the app then says what is wrong with it)."""
    try:
        value = json.loads(body) if body else None
    except json.JSONDecodeError:  # the app says what is wrong with it
        return None
    except UnicodeDecodeError as exc:  # a ValueError too: not the number limit below
        return f"The request body is not valid JSON: it is not UTF-8 text (byte {exc.start})"
    except ValueError:  # past int's 4,300-digit conversion limit
        return "The request body holds a number too long to read"
    except RecursionError:
        return _TOO_DEEP
    try:
        return _unstorable(value, "", 0)
    except RecursionError:
        return _TOO_DEEP


_TOO_DEEP = f"The JSON body is nested more than {MAX_DEPTH} levels deep"


def _unstorable(value: Any, where: str, depth: int) -> str | None:
    """The first value no database column or JSON answer can hold, with its dotted path
    ("body" at the top): text UTF-8 cannot encode, a NUL (PostgreSQL's text refuses it), a
    number that is not finite (NaN, Infinity, 1e999)."""
    if depth > MAX_DEPTH:
        return _TOO_DEEP
    name = where or "body"
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return (
                f"{name} is not valid Unicode text: it holds a lone surrogate "
                "(an escape such as \\ud800 without its pair)"
            )
        if "\0" in value:
            return f"{name} holds a NUL character (\\u0000), which no text field takes"
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{name} is not a finite number"
    items: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    for key, item in items:
        if isinstance(key, str) and _unstorable(key, where, depth) is not None:
            return f"a key in {name} is not text that can be stored"
        found = _unstorable(item, f"{where}.{key}" if where else str(key), depth + 1)
        if found is not None:
            return found
    return None


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    response = JSONResponse({"error": message, "message": message}, status_code=status)
    await response(scope, receive, send)
