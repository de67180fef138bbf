"""One thread that runs every Engine call's deadline, instead of a ``threading.Timer`` per call.

Why: each call is bounded by a watchdog that shuts its socket down when the
call's time is up (``client._Watchdog``). A ``threading.Timer`` per call
started and ended a thread for every POST: about 170 µs of CPU and as much
latency before each call on this project's test machine, a thread id per call,
and a thread start that fails in a process at its ``pids`` limit. Here one
daemon thread, started with the first alarm, sleeps until the earliest alarm
is due; setting or cancelling the earliest wakes it once to sleep again for
the next. With no alarm set it sleeps without a timeout: nothing runs while no
call is in flight.

Callbacks run on that thread, never under its lock (a callback may take locks
of its own that a thread setting an alarm holds). A fork leaves the child a
clock of its own: the parent's thread does not exist there, and its lock may
have been held at the fork.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable


class Alarm:
    """A callback due at a ``time.monotonic()`` instant; :meth:`cancel` before then and it never runs."""

    __slots__ = ("_callback", "_clock", "due")

    def __init__(self, clock: AlarmClock, due: float, callback: Callable[[], object]) -> None:
        self._clock = clock
        self._callback = callback
        self.due = due

    def cancel(self) -> None:
        self._clock._cancel(self)


class AlarmClock:
    """Runs :class:`Alarm` callbacks at their due time on one thread, started with the first alarm.

    The alarms set are the calls in flight, a handful: a list searched for the
    earliest is all the bookkeeping they need.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._fresh()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._fresh)

    def _fresh(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        #: Alarms set and neither cancelled nor run.
        self._set: list[Alarm] = []
        self._thread: threading.Thread | None = None

    def set(self, seconds: float, callback: Callable[[], object]) -> Alarm | None:
        """``callback`` in ``seconds``; None when no thread can run it (the caller bounds the call otherwise).

        Python 3.12+ starts no thread during interpreter shutdown: a process whose first call is its
        exit flush gets None here.
        """
        alarm = Alarm(self, time.monotonic() + max(0.0, seconds), callback)
        with self._changed:
            if self._thread is None:
                thread = threading.Thread(target=self._run, args=(self._changed, self._set), name=self._name)
                thread.daemon = True
                try:
                    thread.start()
                except RuntimeError:
                    return None
                self._thread = thread
            pending = self._set
            if not pending or alarm.due < min(other.due for other in pending):
                self._changed.notify()  # due before whatever the thread sleeps until
            pending.append(alarm)
        return alarm

    def _cancel(self, alarm: Alarm) -> None:
        with self._changed:
            pending = self._set
            if alarm not in pending:
                return  # already run, or cancelled before
            earliest = min(pending, key=_due) is alarm
            pending.remove(alarm)
            if earliest:
                self._changed.notify()  # the thread sleeps until this one: let it sleep until the next

    @staticmethod
    def _run(changed: threading.Condition, pending: list[Alarm]) -> None:
        while True:
            with changed:
                while True:
                    if not pending:
                        changed.wait()
                        continue
                    alarm = min(pending, key=_due)
                    left = alarm.due - time.monotonic()
                    if left <= 0:
                        pending.remove(alarm)
                        break
                    changed.wait(left)
            with contextlib.suppress(Exception):  # one failing callback never stops the others' deadlines
                alarm._callback()


def _due(alarm: Alarm) -> float:
    return alarm.due


#: The clock of the Engine calls of this process.
CALLS = AlarmClock("splight-runner-call-deadlines")
