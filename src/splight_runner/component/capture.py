"""Capture: every ``logging`` record of the process, at the cost of one append.

Why a class-level hook on ``logging.Logger.callHandlers`` and not a handler on
the root logger: splight-lib builds its loggers with ``logging.Logger(name)``
(outside the manager's tree) and ``propagate=False``, so a root handler never
sees them. ``callHandlers`` runs once per record for every ``Logger`` instance,
after the logger's own level and filters said yes, and leaves the component's
handlers, levels and output exactly as they were.

The caller's thread only keeps ``(record, message, context)``; building the
OTel ``LogRecord`` (attributes, exception text, span ids) happens on the
``splight-runner-capture`` thread, which emits into the SDK ``LoggerProvider``
so every configured processor/exporter sees the SDK's own data model.

The hot path imports no OpenTelemetry code: it reads the caller's context only
when ``opentelemetry.context`` is loaded (before that no span can be active),
and tolerates it half-imported by another thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any

from splight_runner import environment as env_names
from splight_runner.engine import records
from splight_runner.pipeline.accounting import DropCounter
from splight_runner.settings import flag

#: ``logging.LogRecord`` attributes that are not user extras.
_RESERVED = frozenset(
    (
        "args", "asctime", "created", "exc_info", "exc_text", "filename", "funcName", "levelname",
        "levelno", "lineno", "message", "module", "msecs", "msg", "name", "pathname", "process",
        "processName", "relativeCreated", "stack_info", "thread", "threadName", "taskName",
    )
)  # fmt: skip
_UNCAUGHT_LOGGER = "splight_runner"
_STATUS_SCOPE = "splight_runner.component.health"


def _context_getter() -> Callable[[], Any]:
    """The cheapest way to read the caller's OTel context, chosen once when the hook is made.

    ``opentelemetry.context.get_current`` is two Python calls down to a
    ``ContextVar.get``; on the hot path the ``ContextVar`` is read directly when
    the runtime context is the standard contextvars one, else the public function.
    """
    module = sys.modules.get("opentelemetry.context")
    if module is None or getattr(module, "get_current", None) is None:
        return _current_context
    runtime = getattr(module, "_RUNTIME_CONTEXT", None)
    variable = getattr(runtime, "_current_context", None)
    if type(runtime).__name__ == "ContextVarsRuntimeContext" and hasattr(variable, "get"):
        return variable.get
    return module.get_current


def _current_context() -> Any:
    """The OTel context of the caller, if OpenTelemetry is loaded at all (else no span can be active)."""
    module = sys.modules.get("opentelemetry.context")
    try:
        return module.get_current() if module is not None else None
    except Exception:  # half-imported by another thread
        return None


class _Otel:
    """OpenTelemetry names the capture thread needs, imported on first use."""

    def __init__(self) -> None:
        from opentelemetry._logs import LogRecord, SeverityNumber
        from opentelemetry.instrumentation.log_utils import std_to_otel

        self.LogRecord = LogRecord
        self.SeverityNumber = SeverityNumber
        self.std_to_otel = std_to_otel


class _Flush:
    """A marker in the intake: everything before it has been emitted once it is reached."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class _Status:
    __slots__ = ("status", "timestamp_ns")

    def __init__(self, status: str) -> None:
        self.status = status
        self.timestamp_ns = time.time_ns()


_OTEL_LEVEL_TEXT = {"WARNING": "WARN", "CRITICAL": "FATAL"}


def _attribute_value(value: Any) -> Any:
    """Keep what OTel attributes can hold; anything else becomes its ``str``."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_attribute_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _attribute_value(v) for k, v in value.items()}
    return str(value)


def _exception_text(record: logging.LogRecord) -> str:
    if record.exc_text:
        return record.exc_text
    if record.exc_info and record.exc_info[0] is not None:
        return "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
    return ""


_LOGGING_FILES = (logging.__file__, __file__)
_SPLIGHT_LOGGING = os.path.join("splight_lib", "logging", "")


def _caller_outside_logging() -> tuple[str, int, str] | None:
    """The real call site of a splight-lib logger call.

    splight-lib's logger wraps ``Logger._log`` without a ``stacklevel``, so on
    Python 3.11+ every one of its records says ``logging.py``: the frame that
    called splight-lib is the one the Engine's ``filename`` should name.
    """
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename not in _LOGGING_FILES and _SPLIGHT_LOGGING not in filename:
            return filename, frame.f_lineno, frame.f_code.co_name
        frame = frame.f_back
    return None


class CaptureBridge:
    """Bounded intake filled by the hot path, drained by one daemon thread.

    The bound is the delivery queue size: past it, records are dropped and
    counted rather than growing the component's memory; the next drained batch
    carries one WARNING record that says how many and when.
    """

    def __init__(
        self,
        provider: Any,
        *,
        max_queue_size: int,
        wake_at: int,
        schedule_delay: float,
        drops: DropCounter,
        report_drops: bool,
    ) -> None:
        #: The SDK LoggerProvider, built before the component runs.
        self._provider = provider
        self._otel = _Otel()
        self._limit = max_queue_size
        self._wake_at = max(1, min(wake_at, max_queue_size))
        self._delay = schedule_delay
        self._items: deque[Any] = deque()
        self._wake = threading.Event()
        self._loggers: dict[str, Any] = {}
        #: Shared with the Splight processor, which reports drops once the Engine is back;
        #: without one (console/OTLP only) the capture thread reports them itself.
        self._drops = drops
        self._report_drops = report_drops
        self._pid = os.getpid()
        self._own_threads: set[int] = set()
        self._code_attributes = flag(env_names.OTEL_PYTHON_LOG_CODE_ATTRIBUTES)
        self._thread: threading.Thread | None = None
        self._stopped = False
        #: The last health status queued, so an unsupervised exit knows whether one is still owed.
        self.last_status: str | None = None
        self._start_thread()

    # --- caller side ---------------------------------------------------------
    def make_hook(self) -> Callable[[logging.Logger, logging.LogRecord], None]:
        """The replacement for ``Logger.callHandlers``; everything it touches is bound locally."""
        original = logging.Logger.callHandlers
        items = self._items
        append = items.append
        limit = self._limit
        wake_at = self._wake_at
        get_context = _context_getter()
        count_drop = self._drops.add
        bridge = self

        def callHandlers(logger: logging.Logger, record: logging.LogRecord) -> None:
            original(logger, record)
            try:
                # A record made in another process was captured there (QueueHandler, SocketHandler).
                if record.process != bridge._pid and record.process is not None:
                    return
                depth = len(items)
                if depth >= limit:
                    count_drop()
                    return
                message = record.__dict__.get("message")
                if message is None:
                    try:
                        message = record.getMessage()
                    except Exception:
                        message = str(record.msg)
                callsite = None
                if record.filename == "logging.py" and "splight_lib" in record.pathname:
                    callsite = _caller_outside_logging()
                append((record, message, get_context(), callsite))
                # Looked up on the bridge: a forked child has a new event.
                if depth == wake_at:
                    bridge._wake.set()
            except Exception:
                pass  # capture must never be why a logging call fails

        callHandlers.__splight_runner__ = original  # type: ignore[attr-defined]
        return callHandlers

    def submit_status(self, status: str) -> None:
        """Queue a health transition behind every record made before it."""
        self.last_status = status
        self._items.append(_Status(status))
        self._wake.set()

    def submit_uncaught(
        self,
        exc_type: type[BaseException],
        exc: BaseException,
        tb: TracebackType | None,
        thread_name: str,
        level: int,
    ) -> None:
        """An uncaught exception as a record of its own, never shown to the component's handlers."""
        frames = traceback.extract_tb(tb) if tb is not None else []
        where = frames[-1] if frames else None
        record = logging.LogRecord(
            _UNCAUGHT_LOGGER,
            level,
            where.filename if where else "",
            (where.lineno or 0) if where else 0,
            "Uncaught exception in thread %r: %s: %s",
            (thread_name, exc_type.__name__, exc),
            (exc_type, exc, tb),
            where.name if where else None,
        )
        self._items.append((record, record.getMessage(), _current_context(), None))
        self._wake.set()

    def flush(self, timeout: float) -> bool:
        """Emit everything captured so far into the provider, waiting at most ``timeout`` s."""
        if self._thread is None or not self._thread.is_alive():
            return not self._items
        marker = _Flush()
        self._items.append(marker)
        self._wake.set()
        return marker.done.wait(max(0.0, timeout))

    # --- fork ----------------------------------------------------------------
    def after_fork_in_child(self) -> None:
        """A forked child starts with an empty intake and its own thread: the parent ships its own."""
        self._pid = os.getpid()
        self._items.clear()
        self._wake = threading.Event()
        if self._report_drops:
            self._drops.reset()
        self._own_threads = set()
        self._start_thread()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    # --- export thread -------------------------------------------------------
    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name="splight-runner-capture", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self._own_threads.add(threading.get_ident())
        wake = self._wake
        while not self._stopped:
            wake.wait(self._delay)
            wake.clear()
            self._drain()
        self._drain()

    def _drain(self) -> None:
        items = self._items
        while items:
            try:
                item = items.popleft()
            except IndexError:
                break
            try:
                if isinstance(item, tuple):
                    self._emit_record(*item)
                elif isinstance(item, _Status):
                    self._emit_status(item)
                else:
                    item.done.set()
            except Exception as error:  # never let one bad record stop the thread
                _warn_once(f"a record could not be converted ({type(error).__name__}: {error})")
        if self._report_drops and self._drops:
            self._emit_drop_warning()

    def _logger(self, name: str) -> Any:
        logger = self._loggers.get(name)
        if logger is None:
            logger = self._loggers[name] = self._provider.get_logger(name)
        return logger

    def _emit_record(
        self,
        record: logging.LogRecord,
        message: str,
        context: Any,
        callsite: tuple[str, int, str] | None,
    ) -> None:
        if record.thread in self._own_threads:
            return  # the SDK warning about a record we were converting: never loop
        d = record.__dict__
        pathname, lineno, function = (
            callsite if callsite is not None else (record.pathname, record.lineno, record.funcName)
        )
        attributes: dict[str, Any] = {records.ATTR_CODE_FILE_PATH: pathname}
        if self._code_attributes:
            attributes[records.ATTR_CODE_FUNCTION] = function
            attributes[records.ATTR_CODE_LINE] = lineno
        event_name = None
        for key in d.keys() - _RESERVED:
            if key[0] == "_":
                continue
            value = d[key]
            if key == "tags":
                if value is not None:
                    attributes[records.ATTR_TAGS] = _attribute_value(value)
            elif key in ("otel.event.name", "event.name"):
                event_name = event_name or value
            else:
                attributes[key] = _attribute_value(value)
        exc_info = record.exc_info
        if exc_info and exc_info[0] is not None:
            attributes[records.ATTR_EXCEPTION_TYPE] = exc_info[0].__name__
            attributes[records.ATTR_EXCEPTION_MESSAGE] = str(exc_info[1])
            attributes[records.ATTR_EXCEPTION_STACKTRACE] = _exception_text(record)
        elif record.exc_text:
            attributes[records.ATTR_EXCEPTION_STACKTRACE] = record.exc_text
        elif record.stack_info:
            attributes[records.ATTR_EXCEPTION_STACKTRACE] = record.stack_info
        timestamp = int(record.created * 1e9)
        otel = self._otel
        self._logger(record.name).emit(
            otel.LogRecord(
                timestamp=timestamp,
                observed_timestamp=timestamp,
                context=context or None,
                severity_text=_OTEL_LEVEL_TEXT.get(record.levelname, record.levelname),
                severity_number=otel.std_to_otel(record.levelno),
                body=message,
                attributes=attributes,
                event_name=event_name,
            )
        )

    def _emit_status(self, item: _Status) -> None:
        otel = self._otel
        self._logger(_STATUS_SCOPE).emit(
            otel.LogRecord(
                timestamp=item.timestamp_ns,
                observed_timestamp=item.timestamp_ns,
                severity_text="INFO",
                severity_number=otel.SeverityNumber.INFO,
                body=item.status,
                attributes={records.ATTR_STATUS: item.status},
                event_name=records.STATUS_EVENT_NAME,
            )
        )

    def _emit_drop_warning(self) -> None:
        report = self._drops.take_report(self._limit)
        if report is None:
            return
        count, message = report
        now = time.time_ns()
        otel = self._otel
        self._logger("splight_runner").emit(
            otel.LogRecord(
                timestamp=now,
                observed_timestamp=now,
                severity_text="WARN",
                severity_number=otel.SeverityNumber.WARN,
                body=message,
                attributes={"splight.dropped.count": count},
            )
        )


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """The runner's own diagnostics go to stderr, never through ``logging`` (that would loop)."""
    if message not in _warned:
        _warned.add(message)
        with contextlib.suppress(Exception):
            sys.stderr.write(f"splight-runner: {message}\n")


def install(bridge: CaptureBridge) -> None:
    """Patch ``Logger.callHandlers`` (once) and the uncaught-exception hooks."""
    current = logging.Logger.callHandlers
    original = getattr(current, "__splight_runner__", None)
    if original is not None:
        logging.Logger.callHandlers = original  # type: ignore[method-assign]
    logging.Logger.callHandlers = bridge.make_hook()  # type: ignore[method-assign]

    previous_excepthook = sys.excepthook

    def excepthook(exc_type, exc, tb):  # type: ignore[no-untyped-def]
        try:
            if not issubclass(exc_type, KeyboardInterrupt):
                bridge.submit_uncaught(exc_type, exc, tb, threading.current_thread().name, logging.CRITICAL)
        except Exception:
            pass
        previous_excepthook(exc_type, exc, tb)

    sys.excepthook = excepthook

    previous_thread_hook = threading.excepthook

    def thread_excepthook(args):  # type: ignore[no-untyped-def]
        try:
            if args.exc_type is not SystemExit:
                name = args.thread.name if args.thread is not None else "unknown"
                bridge.submit_uncaught(args.exc_type, args.exc_value, args.exc_traceback, name, logging.ERROR)
        except Exception:
            pass
        previous_thread_hook(args)

    threading.excepthook = thread_excepthook
