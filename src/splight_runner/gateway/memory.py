"""The gateway's duplicate-suppression memory (why it exists: see :mod:`splight_runner.gateway.server`).

:class:`Delivered` remembers the keys of Engine calls already accepted (a
bounded LRU) and the calls in flight right now; :class:`LastStatus` the last
status the Engine accepted per component id, with one lock per id so statuses
of one component are sent in order.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict


class Delivered:
    """Keys of Engine calls already accepted (bounded LRU) and of calls in flight right now."""

    def __init__(self, capacity: int) -> None:
        self._capacity = max(1, capacity)
        self._accepted: OrderedDict[bytes, None] = OrderedDict()
        self._in_flight: dict[bytes, threading.Event] = {}
        self._lock = threading.Lock()

    def claim(self, key: bytes, deadline: float) -> bool | None:
        """True: the caller must make the call. False: already accepted. None: still in flight elsewhere."""
        while True:
            with self._lock:
                if key in self._accepted:
                    self._accepted.move_to_end(key)
                    return False
                event = self._in_flight.get(key)
                if event is None:
                    self._in_flight[key] = threading.Event()
                    return True
            if not event.wait(max(0.0, deadline - time.monotonic())):
                return None

    def release(self, key: bytes, accepted: bool) -> None:
        with self._lock:
            event = self._in_flight.pop(key, None)
            if accepted:
                self._remember(key)
        if event is not None:
            event.set()

    def remember(self, key: bytes) -> None:
        with self._lock:
            self._remember(key)

    def _remember(self, key: bytes) -> None:
        self._accepted[key] = None
        self._accepted.move_to_end(key)
        while len(self._accepted) > self._capacity:
            self._accepted.popitem(last=False)

    def __contains__(self, key: bytes) -> bool:
        with self._lock:
            return key in self._accepted

    def __len__(self) -> int:
        with self._lock:
            return len(self._accepted)


class LastStatus:
    """Last status the Engine accepted per component id, and one lock per id to keep them in order."""

    def __init__(self, capacity: int) -> None:
        self._capacity = max(1, capacity)
        self._status: OrderedDict[str, str] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def lock_for(self, process_id: str) -> threading.Lock:
        with self._lock:
            lock = self._locks.get(process_id)
            if lock is None:
                if len(self._locks) >= self._capacity:
                    self._locks = {k: v for k, v in self._locks.items() if v.locked()}
                lock = self._locks[process_id] = threading.Lock()
            return lock

    def get(self, process_id: str) -> str | None:
        with self._lock:
            return self._status.get(process_id)

    def set(self, process_id: str, status: str) -> None:
        with self._lock:
            self._status[process_id] = status
            self._status.move_to_end(process_id)
            while len(self._status) > self._capacity:
                self._status.popitem(last=False)
