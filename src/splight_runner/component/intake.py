"""The capture sink under ``opentelemetry-instrument``, where the pipeline runs in the component.

Capture itself (the hook, the flat layout) is the bootstrap's; this is only the
in-process end of it: a bounded deque and one thread feeding the pipeline.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from splight_runner.bootstrap.splight_capture.wire import records_in
from splight_runner.diagnostics import say_once
from splight_runner.pipeline.accounting import FlushMarker


class InProcessIntake:
    """The sink under ``opentelemetry-instrument``: a bounded deque and one thread feeding the pipeline.

    The bound is the delivery queue size: past it, records are dropped and
    counted rather than growing the component's memory.
    """

    def __init__(self, feed: Callable[[tuple[Any, ...]], None], *, limit: int, wake_at: int, interval: float) -> None:
        self._feed = feed
        self.limit = limit
        self.threshold = max(1, min(wake_at, limit))
        self._interval = interval
        self.items: deque[tuple[Any, ...]] = deque()
        self.pid = os.getpid()
        self.dropped = 0
        #: Records the capture hook could not take (it adds; the exit report counts them).
        self.lost = 0
        self.own_threads: set[int] = set()
        self._wake = threading.Event()
        self._stopped = False
        #: Held while one item is fed; close() takes it to stop the feeding between two items.
        self._feed_lock = threading.Lock()
        self._closed = False
        self._start()

    def full(self) -> None:
        if len(self.items) > self.limit:
            # Over the bound: the newest record goes, counted.
            try:
                self.items.pop()
                self.dropped += 1
            except IndexError:
                pass
            return
        self._wake.set()

    def submit(self, item: tuple[Any, ...]) -> None:
        self.items.append(item)
        self._wake.set()

    def flush(self, timeout: float) -> bool:
        """Feed everything captured so far, waiting at most ``timeout`` s."""
        if not self._thread.is_alive():
            return not self.items
        marker = FlushMarker()
        self.items.append(marker)  # type: ignore[arg-type]
        self._wake.set()
        return marker.done.wait(max(0.0, timeout))

    def close(self) -> int:
        """Stop feeding for good; return how many captured log records were never fed.

        Taken under the lock the thread holds while it feeds one item, so the exit
        report reads a still picture: each record was fed, or is counted here.
        """
        with self._feed_lock:
            self._stopped = self._closed = True
            left = records_in(item for item in self.items if not isinstance(item, FlushMarker))
            self.items.clear()
        self._wake.set()
        return left

    def after_fork_in_child(self) -> None:
        """A forked child starts with an empty intake and its own thread: the parent ships its own."""
        self.pid = os.getpid()
        self.items.clear()
        self.lost = 0
        self.dropped = 0
        self._wake = threading.Event()
        self.own_threads.clear()
        self._stopped = False
        self._feed_lock = threading.Lock()
        self._closed = False
        self._start()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="splight-runner-capture", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.own_threads.add(threading.get_ident())
        while not self._stopped:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._drain()
        self._drain()

    def _drain(self) -> None:
        items = self.items
        feed = self._feed
        lock = self._feed_lock
        while items:
            with lock:
                if self._closed:
                    return
                try:
                    item = items.popleft()
                except IndexError:
                    break
                if isinstance(item, FlushMarker):
                    item.done.set()
                    continue
                self._feed_one(feed, item)

    @staticmethod
    def _feed_one(feed: Callable[[tuple[Any, ...]], None], item: tuple[Any, ...]) -> None:
        try:
            feed(item)
        except Exception as error:  # never let one bad record stop the thread
            say_once(f"a record could not be converted ({type(error).__name__}: {error})")
