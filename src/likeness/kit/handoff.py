"""Two-thread pipelines through a bounded queue (so memory stays flat), where neither side
can wait forever on the other: this thread makes items and a worker consumes them
(``in_thread``), or a worker makes them and this thread consumes them (``made_in_thread``)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator
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


@contextmanager
def made_in_thread(make: Callable[[], Iterator[T]], name: str, depth: int) -> Iterator[Iterator[T]]:
    """Run the generator ``make()`` in a thread of its own and yield an iterator over what it
    makes; at most ``depth`` items wait. Its error, if any, is raised by the iterator.
    Leaving the block early stops the generator at its next item."""
    made: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        making = make()
        try:
            for item in making:
                if not _put_until(made, item, stop):
                    return
        except BaseException as exc:  # handed to the consumer
            failure.append(exc)
        finally:
            if isinstance(making, Generator):
                making.close()  # its clean-up runs here, not whenever it is collected
        _put_until(made, _END, stop)

    def items() -> Iterator[T]:
        while (item := made.get()) is not _END:
            yield cast(T, item)
        if failure:
            raise failure[0]

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) as pool:
        maker = pool.submit(run)
        try:
            yield items()
        finally:
            stop.set()
        maker.result()


def _put_until(made: queue.Queue[object], item: object, stop: threading.Event) -> bool:
    """Queue ``item`` unless ``stop`` is set first; whether it was queued."""
    while not stop.is_set():
        try:
            made.put(item, timeout=POLL_S)
            return True
        except queue.Full:
            continue
    return False
