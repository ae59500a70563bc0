"""Two-thread pipelines: this thread makes items, a worker thread consumes them in order
through a bounded queue (so memory stays flat), and neither side can wait forever on the
other."""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar, cast

T = TypeVar("T")
POLL_S = 0.2
_END = object()  # the end of the items (an item may itself be None)


@contextmanager
def in_thread(
    consume: Callable[[Iterator[T]], None], name: str, depth: int
) -> Iterator[Callable[[T], None]]:
    """Run ``consume`` over the items fed to the function this yields, in a thread of its
    own; at most ``depth`` items wait. Leaving the block ends the items and waits for
    ``consume`` to finish; its error, if any, is raised here."""
    pending: queue.Queue[object] = queue.Queue(maxsize=depth)

    def items() -> Iterator[T]:
        while (item := pending.get()) is not _END:
            yield cast(T, item)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) as pool:
        worker = pool.submit(consume, items())
        try:
            yield lambda item: _hand_over(pending, item, worker)
        finally:
            _hand_over(pending, _END, worker)
        worker.result()


def _hand_over(pending: queue.Queue[object], item: object, worker: Future[None]) -> None:
    """Queue ``item`` (or the end marker) for ``worker``. If the worker has died, raise its
    error for an item, or just return for the end marker, rather than wait on a queue that
    nobody empties."""
    while True:
        try:
            pending.put(item, timeout=POLL_S)
            return
        except queue.Full:
            if worker.done():
                if item is not _END:
                    worker.result()
                    raise RuntimeError("the worker thread stopped") from None
                return
