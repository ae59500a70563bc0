"""Wire schemas for /v2/uploads (likeness's own resource: no Tavus counterpart)."""

from __future__ import annotations

from pydantic import BaseModel


class Upload(BaseModel):
    upload_id: str
    url: str
    filename: str
    size_bytes: int
    created_at: str
