"""The BlobStore port: what services and jobs need from storage. ``local.py`` is the default
(files under the data dir); an S3 store will implement the same methods, with ``path``
materialising an object in a local cache (decoders and encoders need a real file)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class BlobStore(Protocol):
    def path(self, key: str) -> Path:
        """The local file for ``key`` (``replicas/r123/train.mp4``); refuses unsafe keys."""
        ...

    def ensure_dir(self, key: str) -> Path:
        """A local folder for ``key``, created if missing (a job's work dir)."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete_tree(self, key: str) -> None:
        """Remove ``key`` and everything under it; nothing if it is absent."""
        ...
