"""Stage 8: the thumbnail video and the list of artifacts."""

from __future__ import annotations

import json
import shutil

from likeness.training.stage import Context, Progress, Stage
from likeness.training.workspace import BUNDLE, THUMBNAIL, Workspace


def run(ctx: Context, _progress: Progress) -> None:
    shutil.copyfile(ctx.work.bundle / "base.mp4", ctx.work.thumbnail)


def artifacts(work: Workspace) -> dict[str, object]:
    """What a finished training leaves, as the replica's row keeps it."""
    manifest = json.loads((work.bundle / "manifest.json").read_text())
    size = sum(p.stat().st_size for p in work.bundle.iterdir() if p.is_file())
    return {
        "bundle": BUNDLE,
        "thumbnail": THUMBNAIL,
        "bundle_bytes": size,
        "manifest": manifest,
        "checks": work.checks(),
        "consent": work.consent(),
        "quality": work.quality(),
    }


STAGE = Stage("package", 100, run)
