"""Keep a job's lease alive while it runs, so a live job is never taken for dead."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, renew: Callable[[], None], every_s: float, name: str) -> None:
        self._renew, self._every_s = renew, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=name)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                self._renew()
            except Exception:  # a missed beat is harmless; the next one retries
                log.warning("lease renewal (%s) failed", self._thread.name, exc_info=True)
