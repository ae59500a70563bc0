"""Stage 3: the spoken consent statement, heard with offline speech recognition in the first
40 s of the training video or in the separate consent video."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from likeness.errors import TrainingFailure
from likeness.media.audio import read_audio
from likeness.media.probe import Undecodable
from likeness.providers.asr_sphinx import SAMPLE_RATE_HZ, transcribe
from likeness.training.consent import WINDOW_S, judge
from likeness.training.stages import download

if TYPE_CHECKING:
    from likeness.training.pipeline import Limits

CONSENT = "consent.json"
CONSENT_SOURCE = "consent.media"


def run(
    work_dir: Path,
    required: bool,
    consent_video_url: str | None,
    limits: Limits,
    resolve_upload: Callable[[str], Path | None],
) -> None:
    if not required:
        (work_dir / CONSENT).write_text(json.dumps({"checked": False}))
        return
    source = work_dir / download.SOURCE
    if consent_video_url:
        source = download.run(
            consent_video_url, work_dir, limits, resolve_upload, name=CONSENT_SOURCE
        )
    try:
        audio, _ = read_audio(source, SAMPLE_RATE_HZ, up_to_s=WINDOW_S)  # not the whole video
    except Undecodable as exc:
        raise TrainingFailure(
            "consent_phrase_mismatch", f"consent audio unreadable: {exc}"
        ) from exc
    result = judge(transcribe(audio[: int(WINDOW_S * SAMPLE_RATE_HZ)]), limits.consent_min_score)
    report = {
        "checked": True,
        "source": "consent_video_url" if consent_video_url else "train_video_url",
        **asdict(result),
    }
    (work_dir / CONSENT).write_text(json.dumps(report))
    if not result.passed:
        raise TrainingFailure("consent_phrase_mismatch", json.dumps({"consent": report}))


def load(work_dir: Path) -> dict[str, object]:
    path = work_dir / CONSENT
    return dict(json.loads(path.read_text())) if path.exists() else {}
