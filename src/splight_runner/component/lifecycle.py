"""Every exit path flushes: normal exit, ``os._exit``, SIGTERM, and forked children.

A component that ends must not take its last records with it — the last lines
before a crash are the ones people read. Each path below ends in
:meth:`Pipeline.shutdown`, which is idempotent and bounded by the export
timeout, so a dead Engine delays an exit by at most that long.

Under ``run-component`` the supervisor owes the final status (only a parent
can see a SIGKILL). Without a supervisor (``opentelemetry-instrument``), the
top process of the component reports it itself, from what it can see of its
own ending: ``sys.exit``/``os._exit`` codes, uncaught exceptions and SIGTERM.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from splight_runner import environment as names
from splight_runner.diagnostics import say
from splight_runner.engine.records import TERMINAL_STATUSES, final_status

if TYPE_CHECKING:
    from splight_runner.component.capture import CaptureBridge
    from splight_runner.pipeline.processor import SplightLogRecordProcessor


class Sdk(Protocol):
    """What the pipeline needs of the SDK set-up."""

    @property
    def logger_provider(self) -> Any: ...

    @property
    def processors(self) -> list[SplightLogRecordProcessor]: ...


class ExitWatch:
    """How this process is ending, as far as it can tell from the inside."""

    def __init__(self) -> None:
        self.code = 0
        self.stopped = False

    def status(self) -> str:
        return final_status(self.code, self.stopped)

    def note_exit(self, code: Any) -> None:
        if code is None:
            self.code = 0
        elif isinstance(code, int):
            self.code = code
        else:
            self.code = 1  # sys.exit("message") prints it and exits 1


class Pipeline:
    """The capture bridge, the provider, and the Splight processors of one process."""

    def __init__(
        self,
        bridge: CaptureBridge,
        sdk: Sdk,
        export_timeout: float,
        exit_watch: ExitWatch | None = None,
    ) -> None:
        self.bridge = bridge
        self.sdk = sdk
        self.export_timeout = export_timeout
        self.exit_watch = exit_watch
        self._lock = threading.Lock()
        self._done = False

    def shutdown(self) -> None:
        """Drain capture → processors → Engine, then stop; at most ``export_timeout`` seconds."""
        with self._lock:
            if self._done:
                return
            self._done = True
        if self.exit_watch is not None and self.bridge.last_status not in TERMINAL_STATUSES:
            self.bridge.submit_status(self.exit_watch.status())
        give_up_at = time.monotonic() + self.export_timeout
        self.bridge.flush(give_up_at - time.monotonic())
        processors = self.sdk.processors
        for processor in processors:
            processor.final_flush(give_up_at)
        # Other processors (OTLP, console) flush inside provider.shutdown; a thread keeps
        # their own, longer timeouts from extending ours.
        closer = threading.Thread(target=self._close_provider, name="splight-runner-shutdown", daemon=True)
        try:
            closer.start()
        except RuntimeError:  # Python 3.12+ starts no thread from atexit: close inline
            self._close_provider()
        else:
            closer.join(max(0.0, give_up_at - time.monotonic()))
        self.bridge.stop()
        lost = sum(p.undelivered() for p in processors)
        if lost:
            say(f"{lost} log records could not be delivered to the Engine before exit")

    def _close_provider(self) -> None:
        with contextlib.suppress(Exception):
            self.sdk.logger_provider.shutdown()

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._done = False
        self.exit_watch = None  # a forked child is not the component: its end is not the component's
        self.bridge.after_fork_in_child()
        for processor in self.sdk.processors:
            processor.after_fork_in_child()


def owes_final_status(shipping_to_engine: bool) -> bool:
    """True for the top process of an unsupervised component (its children inherit the mark)."""
    if not shipping_to_engine or os.environ.get(names.SPLIGHT_RUNNER_STATE_FILE):
        return False
    owner = os.environ.get(names.SPLIGHT_RUNNER_FINAL_STATUS_OWNER)
    if owner is None:
        os.environ[names.SPLIGHT_RUNNER_FINAL_STATUS_OWNER] = str(os.getpid())
        return True
    return owner == str(os.getpid())


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
            _watch().note_exit(code)
            _shutdown_current()
        finally:
            real_exit(code)

    _exit.__wrapped__ = real_exit  # type: ignore[attr-defined]
    os._exit = _exit

    if pipeline.exit_watch is not None:
        _watch_exit_paths()

    if threading.current_thread() is threading.main_thread():
        try:
            if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
                signal.signal(signal.SIGTERM, _on_sigterm)
        except (ValueError, OSError):
            pass

    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)


class _NoWatch(ExitWatch):
    def note_exit(self, code: Any) -> None:
        pass


def _watch() -> ExitWatch:
    watch = _installed.exit_watch if _installed is not None else None
    return watch if watch is not None else _NoWatch()


def _watch_exit_paths() -> None:
    """Learn the exit code of an unsupervised component without changing what it does."""
    real_sys_exit = sys.exit

    def sys_exit(status: Any = None) -> None:
        _watch().note_exit(status)
        real_sys_exit(status)

    sys_exit.__wrapped__ = real_sys_exit  # type: ignore[attr-defined]
    sys.exit = sys_exit

    previous_hook = sys.excepthook

    def excepthook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
        watch = _watch()
        if issubclass(exc_type, KeyboardInterrupt):
            watch.stopped = True
        else:
            watch.note_exit(1)
        previous_hook(exc_type, exc, tb)

    sys.excepthook = excepthook


def _shutdown_current() -> None:
    if _installed is not None:
        try:
            _installed.shutdown()
        except Exception as error:
            say(f"flush at exit failed ({type(error).__name__}: {error})")


def _on_sigterm(signum: int, frame: Any) -> None:
    """Flush, then die of SIGTERM as the component would have: same exit status."""
    _watch().stopped = True
    _shutdown_current()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _after_fork_in_child() -> None:
    if _installed is not None:
        _installed.after_fork_in_child()
