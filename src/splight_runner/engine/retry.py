"""The one retry loop every Engine call goes through (exporter, supervisor).

The policy: retry connection errors, timeouts, 408, 429, 500, 502, 503, 504
(the client classifies them as ``retryable``) with backoff that honours
``Retry-After``; never retry other 4xx. How long to keep trying is the caller's
business — "until the deadline" at exit, "while the queue has room" otherwise
— so the deadline is a callable read at every attempt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from splight_runner.diagnostics import say_limited
from splight_runner.engine.client import EngineError, retry_delay

Deadline = Callable[[], "float | None"]
#: How often a call waiting for its turn during an outage looks at its deadline again.
_TURN_POLL = 0.05
#: What an attempt returns when it should be tried again (after its backoff).
_RETRY = object()

#: The rate-limit kinds of the lines this loop says (see :func:`splight_runner.diagnostics.say_limited`).
REJECTED = "engine-rejected"
OUTAGE_STARTED = "engine-outage-started"
OUTAGE_ENDED = "engine-outage-ended"


class Retrier:
    """Retries a call until it is accepted, rejected or out of time; says when an outage starts and ends.

    Several threads may call at once (the exporter keeps several Engine calls in
    flight): the outage is one for all of them, and :attr:`rejection` is each
    thread's own, so a thread reads the reason of its own last rejected call.

    Every line it says can repeat, so each goes through
    :func:`splight_runner.diagnostics.say_limited` (the first in full, then one
    line a minute with a count): wrong credentials reject every batch, and an
    Engine that flaps starts and ends an outage every few seconds.
    """

    def __init__(self, say_repeating: Callable[[str, str], None] = say_limited) -> None:
        self._say_repeating = say_repeating
        self._outage_since: float | None = None
        self._outage_lock = threading.Lock()
        #: Held by the one call that probes the Engine while it is failing (see ``_take_turn``).
        self._probe = threading.Lock()
        self._hurry = threading.Event()
        self._local = threading.local()

    @property
    def rejection(self) -> EngineError | None:
        """Why this thread's last call that returned False was rejected."""
        return getattr(self._local, "rejection", None)

    @property
    def failing(self) -> bool:
        """True from the first failed attempt of an outage until a call succeeds again."""
        return self._outage_since is not None

    def hurry(self) -> None:
        """Cut the current backoff sleep short (a flush or an exit is waiting)."""
        self._hurry.set()

    def reset(self) -> None:
        """Forget the parent's state in a forked child."""
        self._outage_since = None
        self._outage_lock = threading.Lock()
        self._probe = threading.Lock()
        self._hurry = threading.Event()
        self._local = threading.local()

    def call(
        self,
        call: Callable[[float | None], None],
        *,
        deadline: Deadline,
        what: str,
        handled: frozenset[int] = frozenset(),
    ) -> bool | None:
        """True: accepted. False: rejected for good (not retryable; see :attr:`rejection`). None: the deadline passed.

        ``call`` gets the deadline (a monotonic time, or None) that must bound it
        as a whole. A rejection whose status is in ``handled`` is left for the
        caller to say (or to act on: a 413 is split, not dropped).
        """
        attempt = 0
        while True:
            probing = self._take_turn(deadline) if self._outage_since is not None else False
            if probing is None:
                return None  # the deadline passed while another call probed the Engine
            try:
                outcome = self._attempt(call, deadline, what, handled, attempt)
            finally:
                if probing:
                    self._probe.release()
            if outcome is not _RETRY:
                return outcome  # type: ignore[return-value]
            attempt += 1

    def _take_turn(self, deadline: Deadline) -> bool | None:
        """While the Engine is failing, one call at a time probes it (with its backoff): wait for the turn.

        True: this thread holds the turn. False: the outage ended meanwhile, no turn
        needed. None: the deadline passed. Why: with several calls in flight when an
        outage starts, each would otherwise retry on its own schedule, N calls in
        flight against an Engine that is down.
        """
        while True:
            if self._outage_since is None:
                return False
            wait = _TURN_POLL
            give_up_at = deadline()
            if give_up_at is not None:
                remaining = give_up_at - time.monotonic()
                if remaining <= 0:
                    return None
                wait = min(wait, remaining)
            if self._probe.acquire(timeout=wait):
                if self._outage_since is None:  # it ended while this thread waited
                    self._probe.release()
                    return False
                return True

    def _attempt(
        self, call: Callable[[float | None], None], deadline: Deadline, what: str, handled: frozenset[int], attempt: int
    ) -> bool | object | None:
        """One attempt and, when it failed in a way worth retrying, its backoff: :data:`_RETRY`."""
        give_up_at = deadline()
        if give_up_at is not None and give_up_at <= time.monotonic():
            return None  # no call at all: the exit report counts what is left
        try:
            call(give_up_at)
        except EngineError as error:
            if not error.retryable:
                self._local.rejection = error
                if error.status not in handled:
                    self._say_repeating(REJECTED, f"the Engine rejected {what} ({error}); dropped")
                return False
            with self._outage_lock:
                started = self._outage_since is None
                if started:
                    self._outage_since = time.monotonic()
            if started:
                self._say_repeating(OUTAGE_STARTED, f"cannot deliver to the Engine ({error}); retrying")
            delay = retry_delay(attempt, error.retry_after)
            give_up_at = deadline()
            if give_up_at is not None:
                remaining = give_up_at - time.monotonic()
                if remaining <= 0:
                    # Only an exit sets a deadline: the exit report says what was not delivered.
                    return None
                delay = min(delay, remaining)
            if error.retry_after is not None:
                time.sleep(delay)  # the Engine asked for this wait: a flush does not cut it short
            elif self._hurry.wait(delay):
                self._hurry.clear()
            return _RETRY
        with self._outage_lock:
            since, self._outage_since = self._outage_since, None
        if since is not None:
            outage = time.monotonic() - since
            self._say_repeating(OUTAGE_ENDED, f"delivering to the Engine again after {outage:.1f} s")
        return True
