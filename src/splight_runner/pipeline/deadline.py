"""The one exit deadline, which a stop signal may bring forward but never push back.

When the component has ended, the runner gives its last records and the final
status until ``OTEL_BLRP_EXPORT_TIMEOUT``. A stop signal that arrives during
that flush (``docker stop`` of a container whose component had just exited)
starts the stop grace, after which the container engine kills the runner and
everything still queued is lost without a word. So the deadline is an object,
not a number: every wait of the end re-reads it in short slices, and an Engine
call already in flight is cut at the new time (through :meth:`on_change`), so
that the exit report is still written, inside the grace.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: Longest a wait sleeps before it looks at the deadline again.
_SLICE = 0.05


class ExitDeadline:
    """A :func:`time.monotonic` time; calling the object returns it (an ``engine.retry.Deadline``)."""

    def __init__(self, at: float) -> None:
        self._at = at
        self._lock = threading.Lock()
        self._listeners: list[Callable[[float], None]] = []

    def __call__(self) -> float:
        return self._at

    @property
    def at(self) -> float:
        return self._at

    def remaining(self) -> float:
        return max(0.0, self._at - time.monotonic())

    def passed(self) -> bool:
        return time.monotonic() >= self._at

    def bring_forward(self, at: float) -> None:
        """Move the deadline to ``at`` if that is earlier, and tell the listeners."""
        with self._lock:
            if at >= self._at:
                return
            self._at = at
            listeners = list(self._listeners)
        for listener in listeners:
            listener(at)

    def on_change(self, listener: Callable[[float], None]) -> None:
        """Call ``listener(new_time)`` each time the deadline is brought forward."""
        with self._lock:
            self._listeners.append(listener)

    def wait(self, done: Callable[[float], bool]) -> bool:
        """Call ``done(seconds)`` (a bounded wait) until it returns True or the deadline passes.

        ``done`` is an ``Event.wait``-like function; True when it returned True in time.
        """
        while True:
            left = self._at - time.monotonic()
            if left <= 0:
                return done(0)
            if done(min(left, _SLICE)):
                return True

    def join(self, thread: threading.Thread) -> bool:
        """Wait for ``thread`` to end, at most until the deadline."""

        def ended(seconds: float) -> bool:
            thread.join(seconds)
            return not thread.is_alive()

        return self.wait(ended)


def as_deadline(give_up_at: float | ExitDeadline) -> ExitDeadline:
    return give_up_at if isinstance(give_up_at, ExitDeadline) else ExitDeadline(give_up_at)
