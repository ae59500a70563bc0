"""The worker (``likeness worker``), a composition root beside runtime.py: it builds one
JobContext, registers the jobs on Celery by name, wires what features must not know of each
other (a video waits for its replica's training), and sweeps for work a dead worker left."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from functools import partial

from celery import Celery
from sqlalchemy.orm import Session

from likeness.conversation import service as conversations
from likeness.jobs import lease, outbox
from likeness.jobs.context import JobContext
from likeness.kit.clock import utcnow
from likeness.kit.db import transaction
from likeness.replica import tasks as replica_tasks
from likeness.runtime import Runtime
from likeness.video import tasks as video_tasks
from likeness.webhooks import service as webhooks
from likeness.webhooks import tasks as webhook_tasks

log = logging.getLogger(__name__)

# Every leased job: a training, a render, a callback delivery.
LEASED = (replica_tasks.TRAINING, video_tasks.RENDERING, webhooks.DELIVERY)


def job_context(runtime: Runtime) -> JobContext:
    return JobContext(runtime.sessions, runtime.storage, runtime.settings, runtime.queue)


def register(runtime: Runtime) -> Celery:
    celery = runtime.queue.celery
    ctx = job_context(runtime)
    training_ended = partial(video_tasks.release_waiting, ctx)

    @celery.task(name="replica.train", ignore_result=True)  # type: ignore[untyped-decorator]
    def train(replica_id: str) -> None:
        replica_tasks.train(ctx, replica_id, training_ended)

    @celery.task(name="video.render", ignore_result=True)  # type: ignore[untyped-decorator]
    def render(video_id: str) -> None:
        video_tasks.render(ctx, video_id)

    @celery.task(name="webhook.deliver", ignore_result=True)  # type: ignore[untyped-decorator]
    def deliver(event_id: str) -> None:
        webhook_tasks.deliver_job(ctx, event_id)

    return celery


def sweep(ctx: JobContext, now: datetime | None = None) -> list[tuple[str, str]]:
    """Re-send, once, every job whose holder died (a lease lapsed by more than half a lease:
    a running job's worker, or the worker that held a scheduled retry), send every message
    owed for more than half a lease (its sender died between its commit and its send), and
    re-send every unclaimed job whose message the broker no longer holds (a worker took it
    and died before claiming the row), and end every conversation whose media worker died.
    Queued jobs are not lost and are left alone. Then drop the messages the broker keeps
    after delivery. Returns (job, id) for each."""
    now = now or utcnow()
    held = ctx.queue.held()  # before the rows: a message taken after this still exempts its row
    with transaction(ctx.sessions) as session:
        lost = [
            (kind.job, row_id)
            for kind in LEASED
            for row_id in lease.sweep(session, kind, now, ctx.lease_s / 2)
        ]
        # A conversation cannot be re-run: one whose media worker died is ended instead.
        ended, announced = conversations.end_abandoned(
            session, now, ctx.settings.conversation_lease_s / 2
        )
        outbox.add(session, *lost)  # owed with the cleared leases: a crash now loses nothing
        taken = [] if held is None else _taken_and_dropped(session, now, ctx.lease_s, held)
        lost += outbox.add(session, *taken)
        sending = [*lost, *((webhooks.JOB, event_id) for event_id in announced)]
    with transaction(ctx.sessions) as session:
        overdue = outbox.overdue(session, now, ctx.lease_s / 2)
        unsent = [m for m in overdue if m not in sending]
    for job, row_id in lost:
        why = "took its message" if (job, row_id) in taken else "stopped"
        log.warning("%s %s: its worker %s; re-sent", job, row_id, why)
    for job, row_id in unsent:
        log.warning("%s %s: its message was never sent; sent", job, row_id)
    for conversation_id in ended:
        log.warning("conversation %s: its media worker stopped; ended", conversation_id)
    lost += unsent
    ctx.send(*sending, *unsent)
    ctx.queue.drop_consumed()
    return lost + [(conversations.MEDIA.job, c) for c in ended]


def _taken_and_dropped(
    session: Session, now: datetime, bound_s: float, held: set[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Unclaimed rows, untouched for ``bound_s``, whose message is neither in the broker
    (``held``) nor owed by the outbox: marked (compare-and-set) to be re-sent once."""
    exempt = held | set(outbox.owed(session))
    return [
        (kind.job, row_id)
        for kind in LEASED
        for row_id in lease.sweep_unclaimed(
            session, kind, now, bound_s, {i for job, i in exempt if job == kind.job}
        )
    ]


def start_sweeper(ctx: JobContext) -> threading.Event:
    """Sweep now, then every half lease. Set the event to stop."""
    stop = threading.Event()

    def loop() -> None:
        while True:
            try:
                sweep(ctx)
            except Exception:
                log.warning("stale-job sweep failed", exc_info=True)
            if stop.wait(max(1.0, ctx.lease_s / 2)):
                return

    threading.Thread(target=loop, daemon=True, name="stale-job-sweeper").start()
    return stop


def run_worker(
    runtime: Runtime, concurrency: int, loglevel: str = "INFO", banner: bool = False
) -> None:
    celery = register(runtime)
    stop = start_sweeper(job_context(runtime))
    try:
        celery.worker_main(
            [
                *([] if banner else ["--quiet"]),  # Celery's own: no banner
                "worker",
                f"--concurrency={concurrency}",
                f"--loglevel={loglevel}",
                "--pool=threads" if concurrency > 1 else "--pool=solo",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ]
        )
    finally:
        stop.set()
