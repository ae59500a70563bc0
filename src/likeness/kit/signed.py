"""Capability tokens for links a browser opens (a video's page, its file): an HMAC of the
resource with the API key, so the link works without a header and nothing else does."""

from __future__ import annotations

import hashlib
import hmac


def token(secret: str, resource: str) -> str:
    return hmac.new(secret.encode(), resource.encode(), hashlib.sha256).hexdigest()[:32]


def valid(secret: str, resource: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(token(secret, resource), str(given))
