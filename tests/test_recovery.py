"""Job states and recovery: one claim at a time, resume from the last finished stage, give up
after the attempts run out saying why; after any crash every job and every delivery reaches a
final state, and only what was truly lost is re-sent, once."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from likeness.jobs import lease, outbox
from likeness.jobs.context import JobContext
from likeness.kit.clock import utcnow
from likeness.kit.db import transaction
from likeness.models import Replica, Video, WebhookEvent
from likeness.replica import service, tasks
from likeness.replica.schemas import CreateReplica
from likeness.runtime import Runtime
from likeness.training import failures
from likeness.video import service as videos
from likeness.video import tasks as video_tasks
from likeness.video.schemas import CreateVideo
from likeness.webhooks import service as webhooks
from likeness.webhooks import tasks as webhook_tasks
from likeness.worker import sweep

from .conftest import FIXTURES, Receiver, take_queued


def _ctx(runtime: Runtime) -> JobContext:
    settings = runtime.settings.model_copy(update={"min_duration_s": 5.0})
    return JobContext(runtime.sessions, runtime.storage, settings, runtime.queue)


def _new(runtime: Runtime, url: str = "http://127.0.0.1:9/gone.mp4") -> str:
    """A replica created, its message sent and taken by a worker (as the API leaves it)."""
    body = CreateReplica(train_video_url=url, callback_url="http://127.0.0.1:9/hook")
    with transaction(runtime.sessions) as session:
        replica_id = service.create(session, runtime.settings, body, "replica").id
    _ctx(runtime).send((service.TRAIN_JOB, replica_id))
    assert take_queued(runtime) == [(service.TRAIN_JOB, replica_id)]
    return replica_id


def _taken(runtime: Runtime) -> list[tuple[str, Any]]:
    """Send every message owed (as their senders do after commit) and take them (a worker)."""
    with runtime.sessions() as session:
        owed = outbox.owed(session)
    _ctx(runtime).send(*owed)
    return take_queued(runtime)


def _later(seconds: float) -> Any:
    return utcnow() + timedelta(seconds=seconds)


def test_only_one_worker_claims_a_job(runtime: Runtime) -> None:
    replica_id = _new(runtime)
    with transaction(runtime.sessions) as session:
        assert lease.acquire(session, tasks.TRAINING, replica_id, 120)
    with transaction(runtime.sessions) as session:
        assert not lease.acquire(session, tasks.TRAINING, replica_id, 120)


def test_a_lost_claim_writes_nothing(runtime: Runtime) -> None:
    replica_id = _new(runtime)
    with transaction(runtime.sessions) as session:
        until = lease.acquire(session, tasks.TRAINING, replica_id, 0.01)
    assert until
    first = lease.Claim(runtime.sessions, tasks.TRAINING, replica_id, until, 0.01)
    with transaction(runtime.sessions) as session:  # its lease lapsed: another run takes it
        while not (taken := lease.acquire(session, tasks.TRAINING, replica_id, 60)):
            pass
    assert not first.update(training_progress=50)
    with runtime.sessions() as session:
        row = session.get(Replica, replica_id)
        assert row is not None and row.training_progress == 0 and row.lease_expires_at == taken


def test_resumes_after_the_last_finished_stage(runtime: Runtime) -> None:
    # The URL is dead, so only a job that skips the finished download can complete.
    replica_id = _new(runtime)
    work = runtime.storage.ensure_dir(service.work_key(replica_id))
    shutil.copyfile(FIXTURES / "short_talk.mp4", work / "source.media")
    with transaction(runtime.sessions) as session:
        row = session.get(Replica, replica_id)
        assert row is not None
        row.stage, row.training_progress = "download", 10
    tasks.train(_ctx(runtime), replica_id)
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
    tasks.train(_ctx(runtime), replica_id)
    with runtime.sessions() as session:
        row = session.get(Replica, replica_id)
        assert row is not None and row.status == "error"
        assert row.error_type == "download_link"
        assert row.error_message == failures.MESSAGES["download_link"]
        assert row.error_detail  # where it went wrong, kept for the operator
        assert service.error_detail(row) == row.error_detail  # and shown in the verbose view


def test_a_worker_that_died_three_times_says_so(runtime: Runtime) -> None:
    replica_id = _new(runtime)
    ctx = _ctx(runtime)
    with transaction(runtime.sessions) as session:
        row = session.get(Replica, replica_id)
        assert row is not None
        row.stage = "track"
        row.lease_expires_at = utcnow() - timedelta(seconds=1)  # its worker died
        row.attempts = ctx.settings.job_max_attempts
    assert sweep(ctx, _later(0)) == []  # within the grace: maybe only late
    assert sweep(ctx, _later(ctx.lease_s)) == [("replica.train", replica_id)]
    assert sweep(ctx, _later(ctx.lease_s)) == []  # re-sent once, not again
    assert take_queued(runtime) == [("replica.train", replica_id)]
    tasks.train(ctx, replica_id)  # the re-sent job: one attempt too many
    with runtime.sessions() as session:
        row = session.get(Replica, replica_id)
        assert row is not None and row.status == "error"
        assert row.error_message != failures.INTERNAL_ERROR  # not "reach out to Tavus support"
        assert row.error_message.startswith("Training stopped: it was interrupted 3 times")
        assert "(after stage 'track') ended with: its worker died" in row.error_message
        assert service.error_detail(row) == row.error_message
        (event,) = session.query(WebhookEvent).filter_by(subject_id=replica_id)
        assert event.payload["error_message"] == row.error_message


def test_an_unexpected_error_is_kept_safe_to_show(runtime: Runtime) -> None:
    data = runtime.settings.resolved_data_dir
    error = FileNotFoundError(2, "No such file", str(data / "files" / "replicas" / "r1" / "x"))
    assert lease.summary(error, data) == (
        "FileNotFoundError: [Errno 2] No such file: 'files/replicas/r1/x'"
    )
    outside = lease.summary("failed in /usr/lib/python3/site.py\nTraceback: ...", data)
    assert "/usr" not in outside and "\n" not in outside and "…/site.py" in outside


def test_queued_jobs_are_never_resent(runtime: Runtime) -> None:
    """Issue 16: jobs whose messages wait in the broker for a day are queued, not lost: the
    sweep sends nothing more (the broker's messages are counted)."""
    ctx = _ctx(runtime)
    body = CreateReplica(train_video_url="http://127.0.0.1:9/gone.mp4")
    with transaction(runtime.sessions) as session:
        replica_id = service.create(session, runtime.settings, body, "replica").id
        script = CreateVideo(replica_id=replica_id, script="Hello there.")
        video_id = videos.create(session, runtime.settings, script).id
        event_id = webhooks.record(session, "http://127.0.0.1:9/hook", {"x": 1}, replica_id)
    sent = [
        ("replica.train", replica_id),
        ("video.render", video_id),
        ("webhook.deliver", event_id),
    ]
    ctx.send(*sent)  # as the API and the jobs do after commit
    assert sweep(ctx, _later(86_400)) == []
    assert sorted(take_queued(runtime)) == sorted(sent)  # each message once
    with transaction(runtime.sessions) as session:  # taken by workers that run them (long)
        assert lease.acquire(session, tasks.TRAINING, replica_id, 3 * 86_400)
        assert lease.acquire(session, webhooks.DELIVERY, event_id, 3 * 86_400)
    video_tasks.render(ctx, video_id)  # its message taken: it parks, its replica training
    assert sweep(ctx, _later(86_400)) == []
    assert take_queued(runtime) == []


def test_a_long_queue_is_not_resent(runtime: Runtime) -> None:
    """A backlog waiting in the broker for a day is queued, not lost: nothing is sent twice."""
    ctx = _ctx(runtime)
    body = CreateReplica(train_video_url="http://127.0.0.1:9/gone.mp4")
    with transaction(runtime.sessions) as session:
        sent = [
            (service.TRAIN_JOB, service.create(session, runtime.settings, body, "replica").id)
            for _ in range(200)
        ]
    ctx.send(*sent)
    assert sweep(ctx, _later(86_400)) == []
    assert sweep(ctx, _later(2 * 86_400)) == []
    assert sorted(take_queued(runtime)) == sorted(sent)  # each message once


# A consumer that takes one message from the real broker and is killed before it runs it.
_TAKE_AND_DIE = """
import os, signal, sys
from kombu import Connection
with Connection(sys.argv[1]) as connection:
    connection.SimpleQueue("celery").get(timeout=30)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_job_whose_message_died_with_its_taker_is_sent_once(runtime: Runtime) -> None:
    """The last window of ADR 0001: kombu's SQLAlchemy transport marked the message taken
    (``visible`` false, never given back) and its worker died before claiming the row. The
    row is queued, with no lease, no debt and no message anywhere; the sweep re-sends it
    once, and the job reaches a final state."""
    replica_id = _new_unsent(runtime)
    broker_url = str(runtime.queue.celery.conf.broker_url)
    taker = subprocess.run([sys.executable, "-c", _TAKE_AND_DIE, broker_url], timeout=60)
    assert taker.returncode == -signal.SIGKILL
    broker = runtime.settings.resolved_data_dir / "broker.sqlite"
    with sqlite3.connect(broker) as db:  # taken, and held by nobody
        assert db.execute("SELECT visible FROM kombu_message").fetchall() == [(0,)]
    with runtime.sessions() as session:
        row = session.get(Replica, replica_id)
        assert row is not None and row.status == "started" and row.lease_expires_at is None
        assert outbox.owed(session) == []
    ctx = _ctx(runtime)
    assert sweep(ctx, _later(0)) == []  # just taken: its taker may be claiming it now
    assert sweep(ctx, _later(ctx.lease_s + 1)) == [("replica.train", replica_id)]
    assert sweep(ctx, _later(ctx.lease_s + 1)) == []  # its new message waits: not again
    assert sweep(ctx, _later(86_400)) == []
    assert take_queued(runtime) == [("replica.train", replica_id)]
    tasks.train(ctx, replica_id)  # the dead URL: a final state
    with runtime.sessions() as session:
        row = session.get(Replica, replica_id)
        assert row is not None and row.status == "error" and row.error_type == "download_link"
        assert row.attempts == 1


def _new_unsent(runtime: Runtime) -> str:
    """A replica created and its message sent (as the API leaves it), not yet taken."""
    body = CreateReplica(train_video_url="http://127.0.0.1:9/gone.mp4")
    with transaction(runtime.sessions) as session:
        replica_id = service.create(session, runtime.settings, body, "replica").id
    _ctx(runtime).send((service.TRAIN_JOB, replica_id))
    return replica_id


def test_a_job_whose_send_never_happened_is_sent_once(
    runtime: Runtime, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Window 1 of ADR 0001: the API commits a replica, then dies (here: the broker refuses)
    before its message is sent. The message stays owed; the sweep sends it once, and the
    job reaches a final state."""

    def refused(*_args: object, **_kwargs: object) -> None:
        raise ConnectionError("broker gone")

    monkeypatch.setattr(runtime.queue, "enqueue", refused)
    response = client.post("/v2/replicas", json={"train_video_url": "http://127.0.0.1:9/gone.mp4"})
    assert response.status_code == 200, response.text
    replica_id = response.json()["replica_id"]
    monkeypatch.undo()
    assert take_queued(runtime) == []  # nothing reached the broker
    ctx = _ctx(runtime)
    assert sweep(ctx, _later(0)) == []  # within the grace: its sender may be sending now
    assert sweep(ctx, _later(ctx.lease_s)) == [("replica.train", replica_id)]
    assert sweep(ctx, _later(ctx.lease_s)) == []  # sent once, not again
    with runtime.sessions() as session:
        assert outbox.owed(session) == []
    assert take_queued(runtime) == [("replica.train", replica_id)]
    tasks.train(ctx, replica_id)  # the dead URL: a final state
    with runtime.sessions() as session:
        row = session.get(Replica, replica_id)
        assert row is not None and row.status == "error" and row.error_type == "download_link"


def test_the_broker_forgets_delivered_messages(runtime: Runtime) -> None:
    """Issue 16: kombu's SQLAlchemy transport keeps every consumed message; we drop them."""
    for n in range(3):
        runtime.queue.enqueue("replica.train", f"r{n}")
    with runtime.queue.celery.connection_for_read() as connection:
        queue = connection.SimpleQueue("celery")
        for _ in range(2):
            queue.get(block=False).ack()
        queue.close()
    broker = runtime.settings.resolved_data_dir / "broker.sqlite"
    with sqlite3.connect(broker) as db:
        assert db.execute("SELECT count(*) FROM kombu_message").fetchone() == (3,)
    assert runtime.queue.drop_consumed() == 2
    with sqlite3.connect(broker) as db:
        assert db.execute("SELECT count(*) FROM kombu_message").fetchone() == (1,)
    assert take_queued(runtime) == [("replica.train", "r2")]  # the pending one is still delivered


def test_a_callback_whose_retry_died_with_its_worker_is_delivered(
    runtime: Runtime, receiver: Receiver
) -> None:
    """Issue 15: a retry waits in a worker's memory (a countdown); the worker is killed."""
    receiver.fail_first = 1
    with transaction(runtime.sessions) as session:
        event_id = webhooks.record(session, receiver.url, {"status": "ready"}, "r1")
    settings = runtime.settings.model_copy(update={"webhook_retry_delays_s": [30.0]})
    ctx = JobContext(runtime.sessions, runtime.storage, settings, runtime.queue)
    webhook_tasks.deliver_job(ctx, event_id)  # HTTP 500: a retry is scheduled
    webhook_tasks.deliver_job(ctx, event_id)  # a copy before it is due does nothing
    assert len(receiver.received()) == 1
    assert take_queued(runtime) == [("webhook.deliver", event_id)]  # taken by the worker, then lost
    assert sweep(ctx, _later(0)) == []  # not due yet: nothing is lost
    assert sweep(ctx, _later(30 + ctx.lease_s)) == [("webhook.deliver", event_id)]
    assert sweep(ctx, _later(30 + ctx.lease_s)) == []
    for job, row_id in take_queued(runtime):
        assert job == "webhook.deliver"
        webhook_tasks.deliver_job(ctx, row_id)
    with runtime.sessions() as session:
        event = session.get(WebhookEvent, event_id)
        assert event is not None and event.status == "delivered" and event.attempts == 2
    assert len(receiver.received()) == 2


def test_a_render_whose_retry_was_lost_reaches_a_final_state(runtime: Runtime) -> None:
    """Issue 15: a video retried after an unexpected error stayed ``generating`` forever."""
    replica_id = _new(runtime)
    with transaction(runtime.sessions) as session:
        row = session.get(Replica, replica_id)
        assert row is not None
        service.mark_completed(session, row, {"bundle": "bundle"})  # whose files are missing
        video_id = videos.create(
            session, runtime.settings, CreateVideo(replica_id=replica_id, script="Hi.")
        ).id
    with transaction(runtime.sessions) as session:  # its callback: a worker delivers it
        for job, event_id in _taken(runtime):
            if job == webhooks.JOB:
                assert lease.acquire(session, webhooks.DELIVERY, event_id, 86_400)
    ctx = _ctx(runtime)
    video_tasks.render(ctx, video_id)  # the bundle cannot load: retried in 5 s
    assert take_queued(runtime) == [("video.render", video_id)]  # its worker dies holding it
    with runtime.sessions() as session:
        video = session.get(Video, video_id)
        assert video is not None and video.status == "generating"
        assert video.last_error and "files/replicas" in video.last_error
        assert str(runtime.settings.resolved_data_dir) not in video.last_error
    assert sweep(ctx, _later(0)) == []
    assert sweep(ctx, _later(video_tasks.RETRY_AFTER_S + ctx.lease_s)) == [
        ("video.render", video_id)
    ]
    with transaction(runtime.sessions) as session:  # as if it had been tried until the end
        video = session.get(Video, video_id)
        assert video is not None
        video.attempts = ctx.settings.job_max_attempts
    video_tasks.render(ctx, video_id)
    with runtime.sessions() as session:
        video = session.get(Video, video_id)
        assert video is not None and video.status == "error"
        assert video.status_details == videos.FAILED
        assert video.error_details
        assert video.error_details.startswith("Rendering stopped: it was interrupted 3 times")


def test_deleted_during_training_stops(runtime: Runtime) -> None:
    replica_id = _new(runtime)
    with transaction(runtime.sessions) as session:
        service.delete(
            session,
            runtime.storage,
            replica_id,
            False,
            runtime.settings.public_url,
            runtime.purge_videos_of,
        )
    tasks.train(_ctx(runtime), replica_id)  # not claimable: nothing runs
    with runtime.sessions() as session:
        row = session.get(Replica, replica_id)
        assert row is not None and row.status == "started" and row.attempts == 0
