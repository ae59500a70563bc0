"""The embedded workers of ``likeness serve`` (the job worker, the media worker): each a child
process, restarted if it dies (its unfinished jobs, and its conversations, are then dealt with
by the lease sweep, see worker.py), stopped with the server."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading

log = logging.getLogger(__name__)
RESTART_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0)


def die_with_parent() -> None:  # Linux: a child gets SIGTERM if `serve` itself dies
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def die_with_spawning_parent() -> None:
    """In a multiprocessing child (one of serve's API processes): SIGTERM when `serve` dies,
    and exit now if it already has (between the spawn and the prctl nothing would tell us)."""
    die_with_parent()
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        raise SystemExit(f"likeness serve (pid {parent.pid}) is gone")


class EmbeddedWorker:
    def __init__(self, command: list[str] | None = None, name: str = "worker") -> None:
        self._command = command or [sys.executable, "-m", "likeness", "worker"]
        self._name = name
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._supervise, daemon=True, name="worker-sup")
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        with self._lock:
            return self._process.pid if self._process else None

    def start(self) -> None:
        self._spawn()
        self._thread.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        self._stop.set()
        with self._lock:
            process = self._process
        if process is None:
            return
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout_s)
        if process.poll() is None:
            process.kill()
            process.wait()

    def _spawn(self) -> None:
        process = subprocess.Popen(self._command, preexec_fn=die_with_parent)
        with self._lock:
            self._process = process

    def _supervise(self) -> None:
        failures = 0
        while not self._stop.is_set():
            with self._lock:
                process = self._process
            assert process is not None
            code = process.wait()
            if self._stop.is_set():
                return
            delay = RESTART_DELAYS_S[min(failures, len(RESTART_DELAYS_S) - 1)]
            log.warning(
                "the embedded %s exited (%s); restarting in %.0f s", self._name, code, delay
            )
            if self._stop.wait(delay):
                return
            failures += 1
            self.restarts += 1
            self._spawn()
