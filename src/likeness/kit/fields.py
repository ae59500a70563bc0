"""Bounded text fields for wire schemas: every string a client sends has a size limit, so
no row (and no list answer) can be made arbitrarily large."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# Names fit their columns (String(255)); a URL past 2,048 characters is refused by most
# servers and browsers anyway.
NAME_CHARS = 255
URL_CHARS = 2048
Name = Annotated[str | None, Field(max_length=NAME_CHARS)]
Url = Annotated[str | None, Field(max_length=URL_CHARS)]
# Short words chosen from a list (model_name, replica_type, …).
Word = Annotated[str | None, Field(max_length=64)]
