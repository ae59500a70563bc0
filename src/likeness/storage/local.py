"""The BlobStore (base.py) on local disk. Every key resolves inside the root: no path escapes
it."""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath


class UnsafeKey(ValueError):
    pass


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """The file for ``key`` (``replicas/r123/train.mp4``), refusing anything outside root."""
        pure = PurePosixPath(key)
        if pure.is_absolute() or ".." in pure.parts or not pure.parts:
            raise UnsafeKey(key)
        path = (self.root / pure).resolve()
        if not path.is_relative_to(self.root):
            raise UnsafeKey(key)
        return path

    def ensure_dir(self, key: str) -> Path:
        path = self.path(key)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def delete_tree(self, key: str) -> None:
        path = self.path(key)
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
