"""The training pipeline: ordered stages, progress ``N/100`` after each, resumable.

Each stage is a plain function that reads what earlier stages left in the work directory and
writes its own output there, so a job that dies mid-way resumes from its last finished stage
in any worker. The pipeline knows nothing of HTTP, databases or settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from likeness.training.checks import Thresholds
from likeness.training.stages import (
    consent,
    download,
    fit,
    package,
    probe,
    report,
    track,
    validate,
)


@dataclass(frozen=True)
class Limits:
    max_download_bytes: int = 750 * 1024 * 1024
    download_timeout_s: float = 30.0
    download_attempts: int = 3
    allow_private_urls: bool = False
    min_duration_s: float = 30.0
    max_duration_s: float = 600.0
    min_fps: float = 20.0
    min_face_share: float = 0.5
    checks: Thresholds = field(default_factory=Thresholds)
    consent_min_score: float = 0.6


@dataclass
class Job:
    """One replica's training: where it works and whom it tells about progress."""

    replica_id: str
    train_video_url: str
    engine: str
    work_dir: Path
    limits: Limits = field(default_factory=Limits)
    # Spoken consent: checked when required (in the training video's first 40 s, or in the
    # separate consent video when one is given).
    consent_required: bool = False
    consent_video_url: str | None = None
    # Called with (stage name, progress 0..100) after every finished stage.
    on_stage_done: Callable[[str, int], None] = lambda _stage, _pct: None
    # Called with progress 0..100 while a long stage runs.
    on_progress: Callable[[int], None] = lambda _pct: None
    # Maps one of our own upload URLs to its file (None for any other URL).
    resolve_upload: Callable[[str], Path | None] = lambda _url: None
    # Raises to stop the job between stages (e.g. the replica was deleted).
    check_cancelled: Callable[[], None] = lambda: None


# (name, progress when done, progress when it starts)
STAGES: tuple[tuple[str, int, int], ...] = (
    ("download", 10, 0),
    ("probe", 15, 10),
    ("consent", 20, 15),
    ("track", 55, 20),
    ("validate", 60, 55),
    ("fit", 85, 60),
    ("report", 95, 85),
    ("package", 100, 95),
)


def run(job: Job, finished: str | None = None) -> dict[str, object]:
    """Run every stage after ``finished`` (the last stage a previous attempt completed).

    Returns the artifacts that the package stage lists. Raises TrainingFailure for bad input.
    """
    names = [name for name, _, _ in STAGES]
    start = names.index(finished) + 1 if finished in names else 0
    job.work_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, object] = {}
    for name, done_pct, start_pct in STAGES[start:]:
        job.check_cancelled()

        def progress(fraction: float, lo: int = start_pct, hi: int = done_pct) -> None:
            job.on_progress(lo + int((hi - lo) * max(0.0, min(1.0, fraction))))

        if name == "download":
            download.run(job.train_video_url, job.work_dir, job.limits, job.resolve_upload)
        elif name == "probe":
            probe.run(job.work_dir, job.limits)
        elif name == "consent":
            consent.run(
                job.work_dir,
                job.consent_required,
                job.consent_video_url,
                job.limits,
                job.resolve_upload,
            )
        elif name == "track":
            track.run(job.work_dir, job.limits, progress)
        elif name == "validate":
            validate.run(job.work_dir, job.limits)
        elif name == "fit":
            fit.run(job.work_dir, job.engine, progress)
        elif name == "report":
            report.run(job.work_dir, job.engine)
        elif name == "package":
            result = package.run(job.work_dir)
        job.on_stage_done(name, done_pct)
    if not result:
        result = package.artifacts(job.work_dir)
    return result
