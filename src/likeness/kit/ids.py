"""Ids in Tavus's formats: replicas ``r`` + 10 hex, videos 10 hex, and so on."""

from __future__ import annotations

import secrets


def replica_id() -> str:
    return "r" + secrets.token_hex(5)


def upload_id() -> str:
    return "u" + secrets.token_hex(6)


def opaque_id() -> str:
    return secrets.token_hex(8)
