"""The ``replica.train`` job: a thin shell over training/pipeline.run, plus the sweep that
retries jobs whose worker died (from their last finished stage) or gives up on them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from likeness.config import Settings
from likeness.errors import TrainingFailure
from likeness.jobs.heartbeat import Heartbeat
from likeness.jobs.queue import JobQueue
from likeness.kit.clock import utcnow
from likeness.kit.db import transaction
from likeness.models import Replica
from likeness.replica import repository, service
from likeness.storage.base import BlobStore
from likeness.training import pipeline
from likeness.training.checks import Thresholds
from likeness.upload import service as uploads
from likeness.video import service as videos
from likeness.webhooks.service import JOB as WEBHOOK_JOB

log = logging.getLogger(__name__)
UNCLAIMED_AFTER = timedelta(minutes=10)


@dataclass(frozen=True)
class Deps:
    sessions: sessionmaker[Session]
    storage: BlobStore
    settings: Settings
    queue: JobQueue


class Cancelled(Exception):
    pass


def limits_from(settings: Settings) -> pipeline.Limits:
    return pipeline.Limits(
        max_download_bytes=settings.max_download_bytes,
        download_timeout_s=settings.download_timeout_s,
        download_attempts=settings.download_attempts,
        allow_private_urls=settings.allow_private_urls,
        min_duration_s=settings.min_duration_s,
        max_duration_s=settings.max_duration_s,
        min_fps=settings.min_fps,
        min_face_share=settings.min_face_share,
        checks=thresholds_from(settings),
        consent_min_score=settings.consent_min_score,
    )


def thresholds_from(settings: Settings) -> Thresholds:
    return Thresholds(
        **{name: getattr(settings, f"check_{name}") for name in Thresholds.__dataclass_fields__}
    )


def train(deps: Deps, replica_id: str) -> None:
    settings = deps.settings
    lease = timedelta(seconds=settings.job_lease_s)
    with transaction(deps.sessions) as session:
        if not repository.acquire_lease(session, replica_id, utcnow() + lease):
            log.info(
                "replica %s: not claimable (running elsewhere, finished or deleted)", replica_id
            )
            return
        replica = session.get(Replica, replica_id)
        assert replica is not None
        if replica.attempts > settings.job_max_attempts:
            event = service.mark_failed(
                session,
                replica,
                "quality_issue_detected",
                f"gave up after {settings.job_max_attempts} attempts",
            )
            failed_events = [event, *_release_videos(deps, session, replica)[1]]
            replica = None
        else:
            url, engine, finished = replica.train_video_url, replica.engine, replica.stage
            consent_url = replica.consent_video_url
            consent_required = settings.consent_policy == "required" and not bool(
                replica.properties.get("non_human")
            )
    if replica is None:
        for event in failed_events:
            _send(deps, event)
        return

    job = pipeline.Job(
        replica_id=replica_id,
        train_video_url=url,
        engine=engine,
        work_dir=deps.storage.ensure_dir(service.work_key(replica_id)),
        limits=limits_from(settings),
        consent_required=consent_required,
        consent_video_url=consent_url,
        on_stage_done=lambda stage, pct: _save(deps, replica_id, pct, stage),
        on_progress=lambda pct: _save(deps, replica_id, pct, None),
        resolve_upload=lambda u: _resolve(deps, u),
        check_cancelled=lambda: _check_live(deps, replica_id),
    )
    events: list[str | None] = []
    renders: list[str] = []
    try:
        with Heartbeat(
            lambda: _renew(deps, replica_id), lease.total_seconds() / 4, f"lease-{replica_id}"
        ):
            artifacts = pipeline.run(job, finished)
    except TrainingFailure as failure:
        log.info("replica %s failed: %s", replica_id, failure)
        with transaction(deps.sessions) as session:
            row = _live(session, replica_id)
            if row is not None:  # a deleted replica is announced no more
                events.append(
                    service.mark_failed(session, row, failure.failure_type, failure.detail)
                )
                events += _release_videos(deps, session, row)[1]
    except Cancelled:
        log.info("replica %s deleted during training; stopped", replica_id)
        _release(deps, replica_id)
    except Exception:
        if _gone(deps, replica_id):  # its files vanished under it: deleted, not broken
            log.info("replica %s deleted during training; stopped", replica_id)
        else:
            log.exception("replica %s: unexpected error; it will be retried", replica_id)
            _release(deps, replica_id)
            deps.queue.enqueue(service.TRAIN_JOB, replica_id, countdown=5)
    else:
        with transaction(deps.sessions) as session:
            row = _live(session, replica_id)
            if row is not None:
                events.append(service.mark_completed(session, row, artifacts))
                renders = _release_videos(deps, session, row)[0]
    _tidy(deps, replica_id)
    for event in events:
        _send(deps, event)
    for video_id in renders:
        deps.queue.enqueue(videos.RENDER_JOB, video_id)


def recover_stale(deps: Deps) -> list[str]:
    """Re-enqueue training jobs whose worker died; ``train`` gives up after max attempts."""
    now = utcnow()
    with transaction(deps.sessions) as session:
        rows = repository.stale(session, now, now - UNCLAIMED_AFTER)
        for row in rows:
            row.lease_expires_at = None
            row.updated_at = now  # an unclaimed job is re-sent once per UNCLAIMED_AFTER
        found = [row.id for row in rows]
    for replica_id in found:
        log.warning("replica %s: lease lapsed; retrying from its last stage", replica_id)
        deps.queue.enqueue(service.TRAIN_JOB, replica_id)
    return found


def _send(deps: Deps, event_id: str | None) -> None:
    if event_id:
        deps.queue.enqueue(WEBHOOK_JOB, event_id)


def _save(deps: Deps, replica_id: str, pct: int, stage: str | None) -> None:
    with transaction(deps.sessions) as session:
        row = session.get(Replica, replica_id)
        if row is None or row.status != "started":
            return
        if pct > row.training_progress:
            row.training_progress = min(pct, 99)
        if stage:
            row.stage = stage
        row.lease_expires_at = utcnow() + timedelta(seconds=deps.settings.job_lease_s)


def _resolve(deps: Deps, url: str) -> Path | None:
    with deps.sessions() as session:
        return uploads.local_path(session, deps.storage, deps.settings.public_url, url)


def _check_live(deps: Deps, replica_id: str) -> None:
    with deps.sessions() as session:
        row = session.get(Replica, replica_id)
        if row is None or row.deleted_at is not None:
            raise Cancelled(replica_id)


def _live(session: Session, replica_id: str) -> Replica | None:
    row = session.get(Replica, replica_id)
    return row if row is not None and row.deleted_at is None else None


def _gone(deps: Deps, replica_id: str) -> bool:
    with deps.sessions() as session:
        return _live(session, replica_id) is None


def _tidy(deps: Deps, replica_id: str) -> None:
    """A hard delete removed the row and the folder while the job ran; whatever the job wrote
    after that (a stage re-creating its folder) goes too: no orphan folder stays behind."""
    with deps.sessions() as session:
        hard_deleted = session.get(Replica, replica_id) is None
    if hard_deleted:
        deps.storage.delete_tree(service.work_key(replica_id))


def _release(deps: Deps, replica_id: str) -> None:
    with transaction(deps.sessions) as session:
        row = session.get(Replica, replica_id)
        if row is not None:
            row.lease_expires_at = None


def _release_videos(deps: Deps, session: Session, replica: Replica) -> tuple[list[str], list[str]]:
    settings = deps.settings
    assert settings.api_key
    return videos.after_replica(session, replica, settings.public_url, settings.api_key)


def _renew(deps: Deps, replica_id: str) -> None:
    with transaction(deps.sessions) as session:
        row = session.get(Replica, replica_id)
        if row is not None and row.status == "started":
            row.lease_expires_at = utcnow() + timedelta(seconds=deps.settings.job_lease_s)
