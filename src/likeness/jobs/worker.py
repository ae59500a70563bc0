"""The worker: registers the jobs on a Celery app and runs it, with a sweep thread that
retries training jobs whose worker died."""

from __future__ import annotations

import logging
import threading

from celery import Celery

from likeness.replica import tasks as replica_tasks
from likeness.runtime import Runtime
from likeness.video import tasks as video_tasks
from likeness.webhooks import tasks as webhook_tasks

log = logging.getLogger(__name__)


def register(runtime: Runtime) -> Celery:
    celery = runtime.queue.celery
    deps = replica_tasks.Deps(runtime.sessions, runtime.storage, runtime.settings, runtime.queue)

    @celery.task(name="replica.train", ignore_result=True)  # type: ignore[untyped-decorator]
    def train(replica_id: str) -> None:
        replica_tasks.train(deps, replica_id)

    @celery.task(name="video.render", ignore_result=True)  # type: ignore[untyped-decorator]
    def render(video_id: str) -> None:
        video_tasks.render(deps, video_id)

    @celery.task(name="webhook.deliver", ignore_result=True)  # type: ignore[untyped-decorator]
    def deliver(event_id: str) -> None:
        webhook_tasks.deliver_job(runtime.sessions, runtime.settings, runtime.queue, event_id)

    return celery


def start_sweeper(runtime: Runtime) -> threading.Event:
    """Sweep for stale training jobs now and then every half lease. Set the event to stop."""
    deps = replica_tasks.Deps(runtime.sessions, runtime.storage, runtime.settings, runtime.queue)
    stop = threading.Event()

    def loop() -> None:
        while True:
            try:
                replica_tasks.recover_stale(deps)
                video_tasks.recover_stale(deps)
            except Exception:
                log.warning("stale-job sweep failed", exc_info=True)
            if stop.wait(max(1.0, runtime.settings.job_lease_s / 2)):
                return

    threading.Thread(target=loop, daemon=True, name="stale-job-sweeper").start()
    return stop


def run_worker(runtime: Runtime, concurrency: int, loglevel: str = "INFO") -> None:
    celery = register(runtime)
    stop = start_sweeper(runtime)
    try:
        celery.worker_main(
            [
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
