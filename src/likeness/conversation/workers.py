"""Where the media workers are: each records itself in the data directory
(``media-workers/<pid>.json``, owner-only: its loopback URL and the secret the API must send
it), and the API reads the records to forward a conversation's media to them."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

TOKEN_HEADER = "x-media-token"


@dataclass(frozen=True)
class WorkerAddress:
    url: str
    token: str


def registry_dir(data_dir: Path) -> Path:
    return data_dir / "media-workers"


def record(data_dir: Path, address: WorkerAddress, capacity: int) -> Path:
    entry = registry_dir(data_dir) / f"{os.getpid()}.json"
    entry.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(entry, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"url": address.url, "token": address.token, "capacity": capacity}, out)
    return entry


def registered(data_dir: Path) -> list[WorkerAddress]:
    """The media workers that recorded themselves (a dead one's record may linger: a refused
    connection skips it)."""
    out = []
    for path in sorted(registry_dir(data_dir).glob("*.json")):
        with contextlib.suppress(OSError, ValueError, KeyError):
            entry = json.loads(path.read_text())
            out.append(WorkerAddress(entry["url"], entry["token"]))
    return out
