"""Every exit path flushes: normal exit, ``os._exit``, SIGTERM, and forked children.

A component that ends must not take its last records with it — the last lines
before a crash are the ones people read. Each path below ends in
:meth:`Pipeline.shutdown`, which is idempotent and bounded by the export
timeout, so a dead Engine delays an exit by at most that long.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
import time
from collections.abc import Sequence
from typing import Any

from splight_runner.capture import CaptureBridge
from splight_runner.exporter import SplightLogRecordProcessor, say


class Pipeline:
    """The capture bridge, the provider, and the Splight processors of one process."""

    def __init__(
        self,
        bridge: CaptureBridge,
        logger_provider: Any,
        processors: Sequence[SplightLogRecordProcessor],
        export_timeout: float,
    ) -> None:
        self.bridge = bridge
        self.logger_provider = logger_provider
        self.processors = list(processors)
        self.export_timeout = export_timeout
        self._lock = threading.Lock()
        self._done = False

    def shutdown(self) -> None:
        """Drain capture → processors → Engine, then stop; at most ``export_timeout`` seconds."""
        with self._lock:
            if self._done:
                return
            self._done = True
        give_up_at = time.monotonic() + self.export_timeout
        self.bridge.flush(give_up_at - time.monotonic())
        for processor in self.processors:
            processor.final_flush(give_up_at)
        # Other processors (OTLP, console) flush inside provider.shutdown; a thread keeps
        # their own, longer timeouts from extending ours.
        closer = threading.Thread(target=self._close_provider, name="splight-runner-shutdown", daemon=True)
        closer.start()
        closer.join(max(0.0, give_up_at - time.monotonic()))
        self.bridge.stop()
        lost = sum(p.undelivered() for p in self.processors)
        if lost:
            say(f"{lost} log records could not be delivered to the Engine before exit")

    def _close_provider(self) -> None:
        with contextlib.suppress(Exception):
            self.logger_provider.shutdown()

    def after_fork_in_child(self) -> None:
        with self._lock:
            self._lock = threading.Lock()
            self._done = False
        self.bridge.after_fork_in_child()
        for processor in self.processors:
            processor.after_fork_in_child()


_installed: Pipeline | None = None


def install(pipeline: Pipeline) -> None:
    """Hook ``atexit``, ``os._exit``, SIGTERM and fork. Installed once per process."""
    global _installed
    first = _installed is None
    _installed = pipeline
    if not first:
        return

    atexit.register(_shutdown_current)

    real_exit = os._exit

    def _exit(code: int) -> None:  # splight-lib ends every run with os._exit
        try:
            _shutdown_current()
        finally:
            real_exit(code)

    _exit.__wrapped__ = real_exit  # type: ignore[attr-defined]
    os._exit = _exit

    if threading.current_thread() is threading.main_thread():
        try:
            if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
                signal.signal(signal.SIGTERM, _on_sigterm)
        except (ValueError, OSError):
            pass

    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)


def _shutdown_current() -> None:
    if _installed is not None:
        try:
            _installed.shutdown()
        except Exception as error:
            say(f"flush at exit failed ({type(error).__name__}: {error})")


def _on_sigterm(signum: int, frame: Any) -> None:
    """Flush, then die of SIGTERM as the component would have: same exit status."""
    _shutdown_current()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _after_fork_in_child() -> None:
    if _installed is not None:
        _installed.after_fork_in_child()
