"""Capture: every ``logging`` record of the process, reduced to flat data on the caller's thread.

Why a class-level hook on ``logging.Logger.callHandlers`` and not a handler on
the root logger: splight-lib builds its loggers with ``logging.Logger(name)``
(outside the manager's tree) and ``propagate=False``, so a root handler never
sees them. ``callHandlers`` runs once per record for every ``Logger`` instance,
after the logger's own level and filters said yes, and leaves the component's
handlers, levels and output exactly as they were.

Why flat data built right here: the record is let go of before the call
returns (keeping it for another thread costs the component garbage-collector
work and GIL hand-offs), and a tuple of plain values is what crosses to the
supervisor, which hosts the export pipeline under the runner (the layout is
:mod:`.wire`). The tuple goes to a *sink*: the channel to the supervisor
(:mod:`.channel`), or, under ``opentelemetry-instrument``, the in-process intake
(``splight_runner.component.intake``), whose thread feeds the same pipeline code.

The hot path imports no OpenTelemetry code: it reads the caller's context only
when ``opentelemetry.context`` is loaded (before that no span can be active).
Nor does the bootstrap import ``logging``: the hook is put in place when the
component imports it (:mod:`.imports`), so a component that never logs does
not pay for ``logging`` and what it imports.
"""

from __future__ import annotations

import _thread  # not ``threading``: a component that starts no thread does not import it for us
import os
import sys
import time
from itertools import islice

from . import imports
from .values import plain_value, unprintable
from .voice import say_once
from .wire import LOG, STATUS, UNCAUGHT_LOGGER

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from collections import deque
    from types import ModuleType, TracebackType
    from typing import Any, Callable, Iterable, Protocol

    class Sink(Protocol):
        """Where flat items go: ``items`` is appended to; ``full()`` runs once ``threshold`` are waiting."""

        items: deque[tuple[Any, ...]]
        threshold: int
        pid: int

        #: Records the hook could not take (counted by the hook, reported by the sink).
        lost: int

        def full(self) -> None: ...


#: ``logging.LogRecord`` attributes that are not user extras.
_RESERVED = frozenset(
    (
        "args", "asctime", "created", "exc_info", "exc_text", "filename", "funcName", "levelname",
        "levelno", "lineno", "message", "module", "msecs", "msg", "name", "pathname", "process",
        "processName", "relativeCreated", "stack_info", "thread", "threadName", "taskName",
    )
)  # fmt: skip
#: Attributes a handler's ``Formatter`` adds to a record before the hook sees it.
_FORMATTED = frozenset(("message", "asctime"))


def _base_keys() -> int:
    """How many attributes ``LogRecord.__init__`` sets: extras come after them in the record's ``__dict__``."""
    import logging

    return len(logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__)


_NO_SPAN = (0, 0, 0)


def _context_getter() -> Callable[[], Any]:
    """The cheapest way to read the caller's OTel context, chosen once when the hook is made."""
    module = sys.modules.get("opentelemetry.context")
    if module is None or getattr(module, "get_current", None) is None:
        return current_context
    runtime = getattr(module, "_RUNTIME_CONTEXT", None)
    variable = getattr(runtime, "_current_context", None)
    if type(runtime).__name__ == "ContextVarsRuntimeContext" and hasattr(variable, "get"):
        return variable.get
    return module.get_current


def current_context() -> Any:
    """The OTel context of the caller, if OpenTelemetry is loaded at all (else no span can be active)."""
    module = sys.modules.get("opentelemetry.context")
    try:
        return module.get_current() if module is not None else None
    except Exception:  # half-imported by another thread
        return None


def span_ids(context: Any) -> tuple[int, int, int]:
    """``(trace_id, span_id, trace_flags)`` of the span active in ``context``, zeros when none."""
    if not context:
        return _NO_SPAN
    module = sys.modules.get("opentelemetry.trace.propagation")
    key = getattr(module, "_SPAN_KEY", None)
    span = context.get(key) if key is not None else None
    if span is None:
        return _NO_SPAN
    span_context = span.get_span_context()
    if not span_context.is_valid:
        return _NO_SPAN
    return span_context.trace_id, span_context.span_id, int(span_context.trace_flags)


_SPLIGHT_LOGGING = os.path.join("splight_lib", "logging", "")


def _caller_outside_logging() -> tuple[str, int, str] | None:
    """The real call site of a splight-lib logger call.

    splight-lib's logger wraps ``Logger._log`` without a ``stacklevel``, so on
    Python 3.11+ every one of its records says ``logging.py``: the frame that
    called splight-lib is the one the Engine's ``filename`` should name.
    """
    frame: Any = sys._getframe(3)
    logging_files = (sys.modules["logging"].__file__, __file__)
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename not in logging_files and _SPLIGHT_LOGGING not in filename:
            return filename, frame.f_lineno, frame.f_code.co_name
        frame = frame.f_back
    return None


def _message(record: logging.LogRecord) -> str:
    try:
        message = record.getMessage()
    except Exception as error:
        try:
            message = f"{record.msg} <arguments not formatted: {type(error).__name__}>"
        except Exception:
            return unprintable(record.msg)
    # Text no UTF-8 encoder takes (a lone surrogate) gets replacement characters; ASCII costs one check.
    return message if type(message) is str and message.isascii() else plain_value(message)


def _exception(record: logging.LogRecord) -> tuple[str, str, str] | None:
    exc_info = record.exc_info
    if exc_info and exc_info[0] is not None:
        exc_type, exc, tb = exc_info
        printable = True
        try:
            message = str(exc)
        except Exception:
            message, printable = unprintable(exc), False
        text = record.exc_text
        if not text:
            try:
                import traceback

                text = "".join(traceback.format_exception(exc_type, exc, tb)).rstrip("\n")
            except Exception:
                text = f"{exc_type.__name__}: {message}"
        if not printable:
            # The traceback module's own words for it; one placeholder reads the same everywhere.
            text = str(text).replace("<exception str() failed>", message)
        return plain_value(exc_type.__name__), plain_value(message), plain_value(text)
    if record.exc_text:
        return "", "", plain_value(record.exc_text)
    return None


def _tail_extras(d: dict[Any, Any], base: int) -> dict[str, Any] | None:
    """The user attributes of a record, looking only past the attributes ``LogRecord.__init__`` set.

    ``makeRecord`` adds ``extra=`` after ``__init__``, and a formatter adds
    ``message``/``asctime`` later still, so the few keys past the first ``base``
    are all there is to look at — a fraction of comparing every key with the
    reserved names. A record class that sets attributes before ``__init__`` puts
    a reserved name in that tail; then every key is compared after all.
    """
    extras = None
    for key in islice(d, base, None):
        if key in _RESERVED:
            if key in _FORMATTED:
                continue
            return _extras(d, d.keys() - _RESERVED)  # a record class that set attributes before __init__
        if type(key) is not str or not key or not key.isascii():
            return _extras(d, d.keys() - _RESERVED)  # the careful path for odd keys
        if key[0] == "_":
            continue
        value = d[key]
        kind = type(value)
        if not ((kind is str and value.isascii()) or value is None or kind is bool or kind is float):
            value = plain_value(value)  # cut at a fixed depth, cycles included; never raises
        if extras is None:
            extras = {key: value}
        else:
            extras[key] = value
    return extras


def _extras(d: dict[Any, Any], keys: Iterable[Any]) -> dict[str, Any] | None:
    extras = {}
    for key in keys:
        if type(key) is str and key.isascii():
            name = key
        else:
            # ``extra`` may have any keys (an int, text with a lone surrogate): attribute keys are valid text.
            try:
                name = plain_value(key if isinstance(key, str) else str(key))
            except Exception:
                name = unprintable(key)
        if not name or name[0] == "_":
            continue
        value = d[key]
        kind = type(value)
        if (kind is str and value.isascii()) or value is None or kind is bool or kind is float:
            extras[name] = value
        else:
            extras[name] = plain_value(value)  # cut at a fixed depth, cycles included; never raises
    return extras or None


#: Characters of a record's message, traceback or stack kept: a POST to the Engine carries at most
#: 1 MiB, so nothing longer could ever arrive, and a bigger one would cost the channel's bound.
MAX_TEXT = 256 << 10


def _cut(text: Any) -> Any:
    if type(text) is not str or len(text) <= MAX_TEXT:
        return text
    say_once(
        f"records longer than {MAX_TEXT:,} characters are cut to that (one call to the Engine carries "
        "1 MiB); each cut is marked in its record"
    )
    return text[:MAX_TEXT] + f" … (cut by splight-runner: {len(text):,} characters in all)"


def flattener() -> Callable[[logging.LogRecord], tuple[Any, ...]]:
    """The function that reduces a record to the flat LOG tuple (see :mod:`.wire`)."""
    get_context = _context_getter()
    base = _base_keys()

    def flatten(record: logging.LogRecord) -> tuple[Any, ...]:
        d = record.__dict__
        message = d.get("message")
        if message is None:
            message = _message(record)
        pathname, lineno, function = record.pathname, record.lineno, record.funcName
        if record.filename == "logging.py" and "splight_lib" in pathname:
            callsite = _caller_outside_logging()
            if callsite is not None:
                pathname, lineno, function = callsite
        if len(message) > MAX_TEXT:
            message = _cut(message)
        extras = _tail_extras(d, base) if len(d) > base else None
        exception = _exception(record) if record.exc_info or record.exc_text else None
        if exception is not None and len(exception[2]) > MAX_TEXT:
            exception = (exception[0], _cut(exception[1]), _cut(exception[2]))
        context = get_context()
        trace_id, span_id, flags = span_ids(context) if context else _NO_SPAN
        return (
            LOG,
            record.name,
            record.levelno,
            record.levelname,
            message,
            pathname,
            lineno,
            function,
            record.created,
            extras,
            exception,
            _cut(record.stack_info),
            trace_id,
            span_id,
            flags,
        )

    return flatten


#: Per thread: how deep the component's own handlers (or an excepthook) are running.
_handlers_running = _thread._local()


def in_handlers() -> bool:
    """True while this thread runs the component's logging handlers (or the excepthook's report):
    what they write to stdout/stderr is a record's output, already captured as that record."""
    return getattr(_handlers_running, "depth", 0) > 0


def _marked(function: Callable[..., Any]) -> Callable[..., Any]:
    def run_marked(*args: Any) -> Any:
        local = _handlers_running
        local.depth = getattr(local, "depth", 0) + 1
        try:
            return function(*args)
        finally:
            local.depth -= 1

    return run_marked


def make_hook(
    sink: Sink, own_threads: set[int] | frozenset[int] = frozenset(), *, mark_handlers: bool = False
) -> Callable[..., None]:
    """The replacement for ``Logger.callHandlers``; everything it touches is bound locally.

    ``mark_handlers`` (output captured as records) marks the thread while the
    component's handlers run; off, the hot path pays nothing for it.
    """
    import logging

    original = logging.Logger.callHandlers
    run_handlers = _marked(original) if mark_handlers else original
    items = sink.items
    append = items.append
    flatten = flattener()

    def callHandlers(logger: logging.Logger, record: logging.LogRecord) -> None:
        run_handlers(logger, record)
        try:
            # A record made in another process was captured there (QueueHandler, SocketHandler);
            # one made on the pipeline's own thread (an SDK warning) must not loop.
            if (record.process != sink.pid and record.process is not None) or record.thread in own_threads:
                return
            item = flatten(record)
        except Exception:
            # Capture must never be why a logging call fails; a record it could not take is counted
            # (a RecursionError at the edge of the recursion limit, say), never lost without a word.
            # An attribute, not a call: at that edge one more frame would fail the count too.
            try:
                sink.lost += 1
            except Exception:
                pass
            return
        try:
            append(item)
            if len(items) >= sink.threshold:
                sink.full()
        except Exception:
            pass  # the record is queued: whatever failed after, a later write takes it

    callHandlers.__splight_runner__ = original  # type: ignore[attr-defined]
    return callHandlers


#: ``logging.CRITICAL`` and ``logging.ERROR``, fixed numbers, without importing ``logging`` for them.
_CRITICAL, _ERROR = 50, 40


def status_item(engine_state: str) -> tuple[Any, ...]:
    """A state splight-lib's engine entered, as it names it: the runner maps it to a deployment status."""
    return (STATUS, engine_state, time.time_ns())


def uncaught_record(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None, thread_name: str, level: int
) -> logging.LogRecord:
    """An uncaught exception as a record of its own, never shown to the component's handlers."""
    import logging
    import traceback

    frames = traceback.extract_tb(tb) if tb is not None else []
    where = frames[-1] if frames else None
    try:
        text = str(exc)
    except Exception:
        text = unprintable(exc)
    return logging.LogRecord(
        UNCAUGHT_LOGGER,
        level,
        where.filename if where else "",
        (where.lineno or 0) if where else 0,
        "Uncaught exception in thread %r: %s: %s",
        (thread_name, exc_type.__name__, text),
        (exc_type, exc, tb),
        where.name if where else None,
    )


def install(sink: Sink, own_threads: set[int] | frozenset[int] = frozenset(), *, mark_handlers: bool = False) -> None:
    """Patch ``Logger.callHandlers`` (once ``logging`` is imported) and the uncaught-exception hooks."""

    def hook_logging(logging: Any) -> None:
        current = logging.Logger.callHandlers
        original = getattr(current, "__splight_runner__", None)
        if original is not None:
            logging.Logger.callHandlers = original
        logging.Logger.callHandlers = make_hook(sink, own_threads, mark_handlers=mark_handlers)

    imports.after_import("logging", hook_logging)
    flatten: list[Callable[[Any], tuple[Any, ...]]] = []

    def submit_uncaught(exc_type: Any, exc: Any, tb: Any, name: str, level: int) -> None:
        if not flatten:
            flatten.append(flattener())  # at the first uncaught exception: it imports logging
        sink.items.append(flatten[0](uncaught_record(exc_type, exc, tb, name, level)))
        sink.full()

    previous_excepthook = _marked(sys.excepthook) if mark_handlers else sys.excepthook

    def excepthook(exc_type, exc, tb):  # type: ignore[no-untyped-def]
        try:
            if not issubclass(exc_type, KeyboardInterrupt):
                import threading  # the record's logging imports it in any case

                submit_uncaught(exc_type, exc, tb, threading.current_thread().name, _CRITICAL)
        except Exception:
            pass
        previous_excepthook(exc_type, exc, tb)

    sys.excepthook = excepthook

    def hook_threads(threading: ModuleType) -> None:
        """A thread's uncaught exception goes through ``threading.excepthook``: hooked once there is one."""
        previous_thread_hook = _marked(threading.excepthook) if mark_handlers else threading.excepthook

        def thread_excepthook(args):  # type: ignore[no-untyped-def]
            try:
                if args.exc_type is not SystemExit:
                    name = args.thread.name if args.thread is not None else "unknown"
                    submit_uncaught(args.exc_type, args.exc_value, args.exc_traceback, name, _ERROR)
            except Exception:
                pass
            previous_thread_hook(args)

        threading.excepthook = thread_excepthook

    imports.after_import("threading", hook_threads)
