"""Stage 1: fetch the training video (or take it from our own uploads)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from likeness.errors import TrainingFailure
from likeness.media.download import DownloadError, TooLarge, download

if TYPE_CHECKING:
    from likeness.training.pipeline import Limits

SOURCE = "source.media"


def run(
    url: str,
    work_dir: Path,
    limits: Limits,
    resolve_upload: Callable[[str], Path | None],
    name: str = SOURCE,
) -> Path:
    dest = work_dir / name
    local = resolve_upload(url)
    if local is not None:
        if not local.is_file():
            raise TrainingFailure("download_link", f"upload behind {url} is gone")
        if local.stat().st_size > limits.max_download_bytes:
            raise TrainingFailure("file_size", f"{local.stat().st_size} bytes")
        shutil.copyfile(local, dest)
        return dest
    try:
        download(
            url,
            dest,
            max_bytes=limits.max_download_bytes,
            timeout_s=limits.download_timeout_s,
            attempts=limits.download_attempts,
            allow_private=limits.allow_private_urls,
        )
    except TooLarge as exc:
        raise TrainingFailure("file_size", str(exc)) from exc
    except DownloadError as exc:
        raise TrainingFailure("download_link", str(exc)) from exc
    return dest
