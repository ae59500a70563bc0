"""The training pipeline: an ordered list of stages, progress ``N/100`` after each, resumable.

Each stage (training/stage.py) reads what earlier stages left in the work directory
(training/workspace.py) and writes its own output there, so a job that dies mid-way resumes
after its last finished stage in any worker. The first stages, up to the checks' verdict, are
``check_video``: what `likeness check`, the training job and the benchmarks all run. The
pipeline knows nothing of HTTP, databases or settings.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from likeness.errors import TrainingFailure
from likeness.providers.base import Asr, PhoneRecognizer
from likeness.training.limits import Limits
from likeness.training.stage import Context, Stage
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
from likeness.training.workspace import Workspace

STAGES: tuple[Stage, ...] = (
    download.STAGE,
    probe.STAGE,
    consent.STAGE,
    track.STAGE,
    validate.STAGE,
    fit.STAGE,
    report.STAGE,
    package.STAGE,
)
CHECKED = STAGES.index(validate.STAGE) + 1  # check_video runs STAGES[:CHECKED]


@dataclass
class Job:
    """One replica's training: its inputs, where it works and whom it tells about progress."""

    replica_id: str
    train_video_url: str
    engine: str
    work_dir: Path
    # The speech providers the stages use (providers/base.py ports; the caller picks them):
    # words for the consent check, phones for the quality report's render.
    asr: Asr
    phones: PhoneRecognizer
    limits: Limits = field(default_factory=Limits)
    # replica_type "non_human": no spoken consent is asked for (limits.consent_policy says
    # whether it is asked of the others).
    non_human: bool = False
    # A separate clip with the consent statement (else the training video's first 40 s).
    consent_video_url: str | None = None
    # Called with (stage name, progress 0..100) after every finished stage.
    on_stage_done: Callable[[str, int], None] = lambda _stage, _pct: None
    # Called with progress 0..100 while a long stage runs.
    on_progress: Callable[[int], None] = lambda _pct: None
    # Maps one of our own upload URLs to its file (None for any other URL).
    resolve_upload: Callable[[str], Path | None] = lambda _url: None
    # Raises to stop the job between stages (e.g. the replica was deleted).
    check_cancelled: Callable[[], None] = lambda: None


@dataclass(frozen=True)
class Verdict:
    """Every check's result (checks.json's entries, in order) and the first failure."""

    checks: list[dict[str, Any]]
    failure: TrainingFailure | None


def check_video(job: Job, finished: str | None = None) -> Verdict:
    """Fetch the video and run every check on it, consent included when the limits ask for
    it. A check that fails does not stop the others; a file that cannot be checked at all
    (unreachable, too large, not a video, no audio stream, no frame) raises TrainingFailure."""
    _run(job, STAGES[:CHECKED], finished)
    report = Workspace(job.work_dir).checks()
    return Verdict(report, validate.failure(report))


def run(job: Job, finished: str | None = None) -> dict[str, object]:
    """Run every stage after ``finished`` (the last stage a previous attempt completed).

    Returns the artifacts that the package stage lists. Raises TrainingFailure for bad input,
    with Tavus's type for the first failed check and every check's result in its detail.
    """
    verdict = check_video(job, finished)
    if verdict.failure is not None:
        raise verdict.failure
    _run(job, STAGES[CHECKED:], finished)
    return package.artifacts(Workspace(job.work_dir))


def context(job: Job) -> Context:
    """What the stages see of a job."""
    return Context(
        work=Workspace(job.work_dir),
        limits=job.limits,
        train_video_url=job.train_video_url,
        engine=job.engine,
        non_human=job.non_human,
        consent_video_url=job.consent_video_url,
        resolve_upload=job.resolve_upload,
        asr=job.asr,
        phones=job.phones,
    )


def _run(job: Job, stages: Sequence[Stage], finished: str | None) -> None:
    names = [stage.name for stage in STAGES]
    done = names.index(finished) if finished in names else -1
    job.work_dir.mkdir(parents=True, exist_ok=True)
    ctx = context(job)
    todo = [stage for stage in stages if names.index(stage.name) > done]
    with contextlib.ExitStack() as going_on:
        waiting: list[Stage] = []  # begun beside the stage after them, not yet done
        for position, stage in enumerate(todo):
            job.check_cancelled()
            if stage.beside is not None and position + 1 < len(todo):
                going_on.enter_context(stage.beside(ctx))
                waiting.append(stage)
                continue
            index = names.index(stage.name)
            lo = STAGES[index - 1].done_pct if index else 0
            hi = stage.done_pct

            def progress(fraction: float, lo: int = lo, hi: int = hi) -> None:
                job.on_progress(lo + int((hi - lo) * max(0.0, min(1.0, fraction))))

            stage.run(ctx, progress)
            going_on.close()  # waits for the work begun beside this stage, and saves it
            for begun in [*waiting, stage]:  # in order: a retry resumes after the last
                job.on_stage_done(begun.name, begun.done_pct)
            waiting.clear()
