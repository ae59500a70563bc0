"""Two-thread pipelines: one thread makes items, a worker thread consumes them through a
bounded queue (so memory stays flat), and neither side can wait forever on the other."""

from __future__ import annotations

import queue
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")
POLL_S = 0.2


def hand_over(pending: queue.Queue[T | None], item: T | None, worker: Future[None]) -> None:
    """Queue ``item`` (None: the end marker) for ``worker``. If the worker has died, raise its
    error for an item, or just return for the end marker, rather than wait on a queue that
    nobody empties."""
    while True:
        try:
            pending.put(item, timeout=POLL_S)
            return
        except queue.Full:
            if worker.done():
                if item is not None:
                    worker.result()
                    raise RuntimeError("the worker thread stopped") from None
                return
