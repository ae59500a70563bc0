"""Two-thread pipelines: items arrive in order, errors cross threads, nothing is left running."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from likeness.kit.handoff import in_thread, made_in_thread


def test_a_worker_consumes_every_item_in_order_and_its_error_reaches_the_feeder() -> None:
    seen: list[int | None] = []

    def consume(items: Iterator[int | None]) -> None:
        seen.extend(items)

    with in_thread(consume, "test", depth=2) as feed:
        for item in (1, None, 3):  # None is an item like any other
            feed(item)
    assert seen == [1, None, 3]

    def fail(items: Iterator[int]) -> None:
        for _ in items:
            raise ValueError("consumer broke")

    with pytest.raises(ValueError, match="consumer broke"), in_thread(fail, "test", 1) as feed:
        for item in range(100):
            feed(item)


def test_items_made_in_a_thread_arrive_in_order_with_its_error() -> None:
    def make() -> Iterator[int]:
        yield from range(5)
        raise ValueError("maker broke")

    got: list[int] = []
    with pytest.raises(ValueError, match="maker broke"), made_in_thread(make, "test", 2) as items:
        got.extend(items)
    assert got == [0, 1, 2, 3, 4]


def test_leaving_early_closes_the_maker() -> None:
    closed = threading.Event()

    def make() -> Iterator[int]:
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    with made_in_thread(make, "test", 2) as items:
        assert next(items) == 0
    assert closed.is_set()  # its clean-up ran before the block was left
