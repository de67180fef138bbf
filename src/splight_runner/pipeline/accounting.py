"""Queue bookkeeping of the delivery path: drop accounting and the flush marker.

Every bounded queue on a record's way (the component's channel buffer, the
supervisor's intake, the Splight processor's queue) drops the newest records
when full. They count into one :class:`DropCounter` per pipeline, so the single
WARNING record the Engine gets when it is reachable again states the whole
loss, wherever it happened.
"""

from __future__ import annotations

import threading
import time

from splight_runner.engine.records import drop_message


class DropCounter:
    """How many records were dropped since the last report, and between which times."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._first = 0
        self._last = 0
        self.total = 0

    def add(self, count: int = 1) -> None:
        now = time.time_ns()
        self.add_span(count, now, now)

    def add_span(self, count: int, first_ns: int, last_ns: int) -> None:
        """``count`` records dropped elsewhere between ``first_ns`` and ``last_ns``."""
        if count <= 0:
            return
        with self._lock:
            if not self._count or first_ns < self._first:
                self._first = first_ns
            self._count += count
            self._last = max(self._last, last_ns)
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
        return count, drop_message(count, first, last, f"{limit} records")

    def reset(self) -> None:
        with self._lock:
            self._count = 0
            self.total = 0


class FlushMarker:
    """Put in a queue behind everything queued so far: ``done`` is set once the worker reaches it.

    The one way every queue of the runner (the in-process intake, the Splight
    processor) lets a flush wait for its worker instead of working beside it.
    """

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


def destination_label(exporter_name: str) -> str:
    """How the exit report names a destination (an OTLP failure is not "the Engine")."""
    return "splight (the Splight Engine)" if exporter_name == "splight" else exporter_name
