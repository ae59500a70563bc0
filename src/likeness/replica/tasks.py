"""The ``replica.train`` job: a thin shell over training/pipeline.run under a lease
(jobs/lease.py). A job whose worker died is re-sent by the sweep and resumes after its last
finished stage; past ``job_max_attempts`` it ends in ``error``, saying what happened."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import case
from sqlalchemy.orm import Session

from likeness.config import Settings
from likeness.errors import TrainingFailure
from likeness.jobs import lease
from likeness.jobs.context import JobContext
from likeness.kit.clock import utcnow
from likeness.kit.db import transaction
from likeness.models import Replica
from likeness.providers.asr_sphinx import SphinxAsr, SphinxPhones
from likeness.replica import repository, service
from likeness.training import pipeline
from likeness.training.limits import Limits, Thresholds
from likeness.upload import service as uploads
from likeness.webhooks.service import JOB as WEBHOOK_JOB

log = logging.getLogger(__name__)
RETRY_AFTER_S = 5.0  # after an unexpected error

TRAINING = lease.Kind(service.TRAIN_JOB, Replica, repository.unfinished)

# Called in the transaction that ends a training (completed or failed); returns the
# (job, id) messages to send after commit. The worker wires the videos' handler here: a
# video waits for its replica without this feature knowing about videos.
TrainingEnded = Callable[[Session, Replica], list[tuple[str, str]]]


def _nothing_waits(_session: Session, _replica: Replica) -> list[tuple[str, str]]:
    return []


def limits_from(settings: Settings) -> Limits:
    return Limits(
        max_download_bytes=settings.max_download_bytes,
        download_timeout_s=settings.download_timeout_s,
        download_attempts=settings.download_attempts,
        allow_private_urls=settings.allow_private_urls,
        min_duration_s=settings.min_duration_s,
        min_fps=settings.min_fps,
        min_face_share=settings.min_face_share,
        max_memory_bytes=settings.max_training_memory_bytes,
        checks=thresholds_from(settings),
        consent_policy=settings.consent_policy,
        consent_min_score=settings.consent_min_score,
    )


def thresholds_from(settings: Settings) -> Thresholds:
    return Thresholds(
        **{name: getattr(settings, f"check_{name}") for name in Thresholds.__dataclass_fields__}
    )


def train(ctx: JobContext, replica_id: str, ended: TrainingEnded = _nothing_waits) -> None:
    settings = ctx.settings
    with transaction(ctx.sessions) as session:
        until = lease.acquire(session, TRAINING, replica_id, ctx.lease_s)
        if until is None:
            log.info(
                "replica %s: not claimable (running elsewhere, finished or deleted)", replica_id
            )
            return
        claim = lease.Claim(ctx.sessions, TRAINING, replica_id, until, ctx.lease_s)
        replica = session.get(Replica, replica_id)
        assert replica is not None
        gave_up = replica.attempts > settings.job_max_attempts
        if gave_up:
            claim.finish(session)
            messages = [*_gave_up(session, replica), *ended(session, replica)]
        url, engine, finished = replica.train_video_url, replica.engine, replica.stage
        consent_url = replica.consent_video_url
        non_human = bool(replica.properties.get("non_human"))
    if gave_up:
        ctx.send(*messages)
        return

    job = pipeline.Job(
        replica_id=replica_id,
        train_video_url=url,
        engine=engine,
        work_dir=ctx.storage.ensure_dir(service.work_key(replica_id)),
        asr=SphinxAsr(),
        phones=SphinxPhones(),
        limits=limits_from(settings),
        non_human=non_human,
        consent_video_url=consent_url,
        on_stage_done=lambda stage, pct: _progress(claim, pct, stage),
        on_progress=lambda pct: _progress(claim, pct, None),
        resolve_upload=lambda u: _resolve(ctx, u),
        check_cancelled=claim.check,
    )
    try:
        with claim.kept_alive():
            artifacts = pipeline.run(job, finished)
    except TrainingFailure as failure:
        log.info("replica %s failed: %s", replica_id, failure)
        failure_type, detail = failure.failure_type, failure.detail
        if not detail.startswith("{"):  # JSON details are the checks' report, shown as such
            detail = lease.summary(detail, settings.resolved_data_dir)
        messages = _end(
            ctx,
            claim,
            ended,
            lambda s, row: _events(service.mark_failed(s, row, failure_type, detail)),
        )
    except lease.LeaseLost:
        log.info("replica %s deleted, finished or taken over during training; stopped", replica_id)
        messages = []
    except Exception as exc:
        due = utcnow() + timedelta(seconds=RETRY_AFTER_S)
        # A deleted replica's claim is gone (its files may have vanished under the job).
        if claim.retry_at(due, lease.summary(exc, settings.resolved_data_dir)):
            log.exception("replica %s: unexpected error; it will be retried", replica_id)
            ctx.queue.enqueue(service.TRAIN_JOB, replica_id, countdown=RETRY_AFTER_S)
        else:
            log.info("replica %s deleted during training; stopped", replica_id)
        messages = []
    else:
        messages = _end(
            ctx, claim, ended, lambda s, row: _events(service.mark_completed(s, row, artifacts))
        )
    _tidy(ctx, replica_id)
    ctx.send(*messages)


def _end(
    ctx: JobContext,
    claim: lease.Claim,
    ended: TrainingEnded,
    mark: Callable[[Session, Replica], list[tuple[str, str]]],
) -> list[tuple[str, str]]:
    """Write the final state if the claim still holds (else another run owns the row, or
    the replica was deleted: a deleted replica is announced no more)."""
    with transaction(ctx.sessions) as session:
        if not claim.finish(session):
            return []
        row = session.get(Replica, claim.row_id)
        assert row is not None
        return [*mark(session, row), *ended(session, row)]


def _gave_up(session: Session, replica: Replica) -> list[tuple[str, str]]:
    """Out of attempts: say what happened in words, not Tavus's "reach out to support"."""
    where = f"after stage '{replica.stage}'" if replica.stage else "before its first stage"
    message = (
        f"Training stopped: it was interrupted {replica.attempts - 1} times. The last run "
        f"({where}) ended with: {replica.last_error or 'no reason recorded'}."
    )
    return _events(service.mark_failed(session, replica, "interrupted", message, message))


def _events(event_id: str | None) -> list[tuple[str, str]]:
    return [(WEBHOOK_JOB, event_id)] if event_id else []


def _progress(claim: lease.Claim, pct: int, stage: str | None) -> None:
    """Progress only grows and stays below 100 until the job ends; writing it renews the
    lease. A lost claim stops the job at its next check."""
    pct = min(pct, 99)
    values: dict[str, object] = {
        "training_progress": case(
            (Replica.training_progress < pct, pct), else_=Replica.training_progress
        )
    }
    if stage:
        values["stage"] = stage
    claim.update(**values)


def _resolve(ctx: JobContext, url: str) -> Path | None:
    with ctx.sessions() as session:
        return uploads.local_path(session, ctx.storage, ctx.settings.public_url, url)


def _tidy(ctx: JobContext, replica_id: str) -> None:
    """A hard delete removed the row and the folder while the job ran; whatever the job wrote
    after that (a stage re-creating its folder) goes too: no orphan folder stays behind."""
    with ctx.sessions() as session:
        hard_deleted = session.get(Replica, replica_id) is None
    if hard_deleted:
        ctx.storage.delete_tree(service.work_key(replica_id))
