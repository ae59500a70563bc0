"""Job states and recovery: one claim at a time, resume from the last finished stage, give up
after the attempts run out."""

from __future__ import annotations

import shutil
from datetime import timedelta

from likeness.kit.clock import utcnow
from likeness.kit.db import transaction
from likeness.models import Replica, WebhookEvent
from likeness.replica import repository, service, tasks
from likeness.replica.schemas import CreateReplica
from likeness.runtime import Runtime
from likeness.training import failures

from .conftest import FIXTURES


def _deps(runtime: Runtime) -> tasks.Deps:
    settings = runtime.settings.model_copy(update={"min_duration_s": 5.0})
    return tasks.Deps(runtime.sessions, runtime.storage, settings, runtime.queue)


def _new(runtime: Runtime, url: str = "http://127.0.0.1:9/gone.mp4") -> str:
    body = CreateReplica(train_video_url=url, callback_url="http://127.0.0.1:9/hook")
    with transaction(runtime.sessions) as session:
        return service.create(session, runtime.settings, body, "replica").id


def test_only_one_worker_claims_a_job(runtime: Runtime) -> None:
    replica_id = _new(runtime)
    until = utcnow() + timedelta(minutes=2)
    with transaction(runtime.sessions) as session:
        assert repository.acquire_lease(session, replica_id, until)
    with transaction(runtime.sessions) as session:
        assert not repository.acquire_lease(session, replica_id, until)


def test_resumes_after_the_last_finished_stage(runtime: Runtime) -> None:
    # The URL is dead, so only a job that skips the finished download can complete.
    replica_id = _new(runtime)
    work = runtime.storage.ensure_dir(service.work_key(replica_id))
    shutil.copyfile(FIXTURES / "short_talk.mp4", work / "source.media")
    with transaction(runtime.sessions) as session:
        row = session.get(Replica, replica_id)
        assert row is not None
        row.stage, row.training_progress = "download", 10
    tasks.train(_deps(runtime), replica_id)
    with runtime.sessions() as session:
        row = session.get(Replica, replica_id)
        assert row is not None
        assert row.status == "completed", row.error_detail
        assert row.training_progress == 100 and row.attempts == 1
        assert row.lease_expires_at is None
        assert session.query(WebhookEvent).filter_by(subject_id=replica_id).count() == 1
    assert (work / "bundle" / "manifest.json").exists()


def test_a_bad_video_is_an_error_with_the_tavus_message(runtime: Runtime) -> None:
    replica_id = _new(runtime)
    tasks.train(_deps(runtime), replica_id)
    with runtime.sessions() as session:
        row = session.get(Replica, replica_id)
        assert row is not None and row.status == "error"
        assert row.error_type == "download_link"
        assert row.error_message == failures.MESSAGES["download_link"]
        assert row.error_detail  # where it went wrong, kept for the operator


def test_lapsed_lease_is_swept_and_attempts_run_out(runtime: Runtime) -> None:
    replica_id = _new(runtime)
    deps = _deps(runtime)
    with transaction(runtime.sessions) as session:
        row = session.get(Replica, replica_id)
        assert row is not None
        row.lease_expires_at = utcnow() - timedelta(seconds=1)  # its worker died
        row.attempts = deps.settings.job_max_attempts
    assert tasks.recover_stale(deps) == [replica_id]
    assert tasks.recover_stale(deps) == []  # swept once, not again
    tasks.train(deps, replica_id)  # the re-sent job: one attempt too many
    with runtime.sessions() as session:
        row = session.get(Replica, replica_id)
        assert row is not None and row.status == "error"
        assert row.error_message == failures.INTERNAL_ERROR
        assert "attempts" in (row.error_detail or "")


def test_deleted_during_training_stops(runtime: Runtime) -> None:
    replica_id = _new(runtime)
    with transaction(runtime.sessions) as session:
        service.delete(session, runtime.storage, replica_id, False, runtime.settings.public_url)
    tasks.train(_deps(runtime), replica_id)  # not claimable: nothing runs
    with runtime.sessions() as session:
        row = session.get(Replica, replica_id)
        assert row is not None and row.status == "started" and row.attempts == 0
