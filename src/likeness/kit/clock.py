"""Time, injectable, and Tavus's timestamp formats."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime


def utcnow() -> datetime:
    """Naive UTC, as stored in the database (SQLite and PostgreSQL alike)."""
    return datetime.now(UTC).replace(tzinfo=None)


def utcnow_aware() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were stored as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso_ms(moment: datetime) -> str:
    """Replica timestamps: ``2024-01-24T07:14:03.327Z``."""
    utc = as_utc(moment)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def iso_us(moment: datetime) -> str:
    """Conversation and persona timestamps: ``2025-05-13T06:42:58.291561Z``."""
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc1123(moment: datetime) -> str:
    """Video timestamps: ``Mon, 14 Jul 2025 09:14:24 GMT``."""
    return format_datetime(as_utc(moment), usegmt=True)


def callback_time(moment: datetime) -> str:
    """Video callbacks: ``2024-08-28 15:27:40.824457``."""
    return as_utc(moment).strftime("%Y-%m-%d %H:%M:%S.%f")
