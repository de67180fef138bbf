"""Drop accounting shared by the capture intake and the delivery queue.

Both queues are bounded and drop the newest record when full. They count into
one :class:`DropCounter`, so the single WARNING record the Engine gets when it
is reachable again states the whole loss, wherever it happened.
"""

from __future__ import annotations

import threading
import time

from splight_runner.engine.records import rfc3339


class DropCounter:
    """How many records were dropped since the last report, and between which times."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._first = 0.0
        self._last = 0.0
        self.total = 0

    def add(self, count: int = 1) -> None:
        now = time.time()
        with self._lock:
            if not self._count:
                self._first = now
            self._count += count
            self._last = now
            self.total += count

    def __bool__(self) -> bool:
        return self._count > 0

    def take_report(self, limit: int) -> tuple[int, str] | None:
        """``(count, message)`` for the WARNING record, resetting the count; None when nothing was dropped."""
        with self._lock:
            count, first, last = self._count, self._first, self._last
            self._count = 0
        if not count:
            return None
        return count, (
            f"splight-runner dropped {count} log records made between {rfc3339(int(first * 1e9))} and "
            f"{rfc3339(int(last * 1e9))}: its queue ({limit} records) was full while they could not be sent"
        )

    def reset(self) -> None:
        with self._lock:
            self._count = 0
            self.total = 0
