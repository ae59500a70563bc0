"""A real worker process killed mid-job (ADR 0001, window 2): it held no message it had not
started, so every job still reaches a final state, and none is sent twice."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from likeness.jobs.context import JobContext
from likeness.kit.db import transaction
from likeness.models import WebhookEvent
from likeness.runtime import Runtime
from likeness.webhooks import service as webhooks

from .conftest import API_KEY

LEASE_S = 2.0


@pytest.fixture
def hanging() -> Iterator[tuple[str, threading.Event, list[str]]]:
    """A callback URL whose first two POSTs hang until the event is set (they keep both of a
    worker's threads busy); later ones answer 200. Yields (url, release, subjects seen)."""
    release, seen = threading.Event(), []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"] or 0)))
            with lock:
                seen.append(body["subject"])
                hang = len(seen) <= 2
            if hang:
                release.wait(30)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", release, seen
    release.set()
    server.shutdown()
    server.server_close()


def _worker(data: Path) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        LIKENESS_DATA_DIR=str(data),
        LIKENESS_API_KEY=API_KEY,
        LIKENESS_ALLOW_PRIVATE_URLS="true",
        LIKENESS_JOB_LEASE_S=str(LEASE_S),
        LIKENESS_WEBHOOK_TIMEOUT_S="2",
    )
    with (data / "worker.log").open("ab") as log:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "likeness", "worker", "--concurrency", "2"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _until(condition: Callable[[], bool], what: str, data: Path, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}:\n{(data / 'worker.log').read_text()}"
        time.sleep(0.05)


def test_a_killed_worker_held_no_message_it_had_not_started(
    runtime: Runtime, hanging: tuple[str, threading.Event, list[str]]
) -> None:
    """Both of a worker's threads are busy (a and b hang) and c waits: the worker must not
    take c (kombu's SQLAlchemy transport never gives a taken message back, so a c taken and
    then killed would stay pending forever). Killed, then restarted: all three are
    delivered, c once."""
    url, release, seen = hanging
    data = runtime.settings.resolved_data_dir
    ctx = JobContext(runtime.sessions, runtime.storage, runtime.settings, runtime.queue)
    with transaction(runtime.sessions) as session:
        a, b, c = (webhooks.record(session, url, {"subject": s}, s) for s in "abc")
    ctx.send((webhooks.JOB, a), (webhooks.JOB, b), (webhooks.JOB, c))
    worker = _worker(data)
    try:
        _until(lambda: len(seen) == 2, "a and b keep both threads busy", data)
        time.sleep(0.5)  # time enough for the worker to take c, if it would
        assert _waiting(data) == 1 and sorted(seen) == ["a", "b"]
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    release.set()
    restarted = _worker(data)
    try:
        _until(lambda: _delivered(runtime) == {a, b, c}, "all delivered", data, timeout_s=30)
    finally:
        restarted.terminate()
        restarted.wait(30)
    assert sorted(seen) == ["a", "a", "b", "b", "c"]  # a and b were cut off once


def _waiting(data: Path) -> int:
    """Messages still in the broker, taken by no worker."""
    with sqlite3.connect(data / "broker.sqlite") as db:
        query = "SELECT count(*) FROM kombu_message WHERE visible = 1"
        return int(db.execute(query).fetchone()[0])


def _delivered(runtime: Runtime) -> set[str]:
    with runtime.sessions() as session:
        events = session.query(WebhookEvent).filter_by(status="delivered")
        return {event.id for event in events}
