"""Stage 5: the thumbnail video and the list of artifacts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from likeness.training.stages import consent, report, validate
from likeness.training.stages.fit import BUNDLE

THUMBNAIL = "thumbnail.mp4"


def run(work_dir: Path) -> dict[str, object]:
    bundle = work_dir / BUNDLE
    shutil.copyfile(bundle / "base.mp4", work_dir / THUMBNAIL)
    return artifacts(work_dir)


def artifacts(work_dir: Path) -> dict[str, object]:
    bundle = work_dir / BUNDLE
    manifest = json.loads((bundle / "manifest.json").read_text())
    size = sum(p.stat().st_size for p in bundle.iterdir() if p.is_file())
    return {
        "bundle": BUNDLE,
        "thumbnail": THUMBNAIL,
        "bundle_bytes": size,
        "manifest": manifest,
        "checks": validate.load(work_dir),
        "consent": consent.load(work_dir),
        "quality": report.load(work_dir),
    }
