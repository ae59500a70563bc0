"""``x-api-key`` on every route; a wrong or missing key is Tavus's 401."""

from __future__ import annotations

import secrets

from fastapi import Request

from likeness.errors import Unauthorized


def require_api_key(request: Request) -> None:
    expected: str = request.app.state.runtime.settings.api_key
    given = request.headers.get("x-api-key", "")
    if not given or not secrets.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized()
