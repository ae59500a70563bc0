"""Ids in Tavus's formats: replicas ``r`` + 10 hex, videos 10 hex, and so on. Ids are on the
wire: a format changes here or nowhere."""

from __future__ import annotations

import secrets


def replica_id() -> str:
    return "r" + secrets.token_hex(5)


def conversation_id() -> str:
    """``c`` + 11 hex, as Tavus's ``ca4301628cb9``."""
    return "c" + secrets.token_hex(6)[:11]


def persona_id() -> str:
    """``p`` + 11 hex, as Tavus's ``pcb7a34da5fe``."""
    return "p" + secrets.token_hex(6)[:11]


def video_id() -> str:
    return secrets.token_hex(5)


def upload_id() -> str:
    return "u" + secrets.token_hex(6)


def webhook_message_id() -> str:
    """A callback's ``webhook-id`` (Standard Webhooks)."""
    return "msg_" + secrets.token_hex(12)


def opaque_id() -> str:
    return secrets.token_hex(8)
