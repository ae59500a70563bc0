"""``x-api-key`` on every route; a wrong or missing key is Tavus's 401."""

from __future__ import annotations

import secrets

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from likeness.errors import Unauthorized

# Declared as a security scheme so /docs offers "Authorize"; checked by hand so that a bad
# key answers Tavus's body rather than FastAPI's. ``async`` so that the check runs on the
# event loop instead of costing a thread-pool hop on every request.
api_key_header = APIKeyHeader(name="x-api-key", auto_error=False)


async def require_api_key(request: Request, given: str | None = Security(api_key_header)) -> None:
    if not key_matches(given, request.app.state.runtime.settings.api_key.encode()):
        raise Unauthorized()


def key_matches(given: str | None, expected: bytes) -> bool:
    """The one key check (this dependency's and the lean reads' in api/reads.py), in
    constant time. ``given`` is the header as Starlette decodes it (latin-1)."""
    return given is not None and given != "" and secrets.compare_digest(given.encode(), expected)
