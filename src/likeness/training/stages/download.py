"""Stage 1: fetch the training video (or take it from our own uploads)."""

from __future__ import annotations

import shutil
from pathlib import Path

from likeness.errors import TrainingFailure
from likeness.media.download import DownloadError, TooLarge, download
from likeness.training.stage import Context, Progress, Stage


def run(ctx: Context, _progress: Progress) -> None:
    fetch(ctx, ctx.train_video_url, ctx.work.source)


def fetch(ctx: Context, url: str, dest: Path) -> None:
    """``url`` into ``dest``, within the download limits (the consent stage fetches its
    separate video with this too)."""
    limits = ctx.limits
    local = ctx.resolve_upload(url)
    if local is not None:
        if not local.is_file():
            raise TrainingFailure("download_link", f"upload behind {url} is gone")
        if local.stat().st_size > limits.max_download_bytes:
            raise TrainingFailure("file_size", f"{local.stat().st_size} bytes")
        shutil.copyfile(local, dest)
        return
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


STAGE = Stage("download", 10, run)
