"""Flat records: what capture hands over, and how they become SDK log records.

Why flat data and not ``logging.LogRecord`` objects: the caller's thread must
let go of the record at once (a record kept for another thread costs the
component in garbage-collector work and in GIL hand-offs), and under the runner
the record crosses a process boundary to the supervisor, which hosts the
export pipeline. So the capture hook reduces each record to a tuple of plain
values (the channel's format carries it) and everything OpenTelemetry does with it
happens here, in whichever process hosts the pipeline: the supervisor under
``run-component``, the component itself under ``opentelemetry-instrument``.
Both hosts call :class:`FlatEmitter`, so the exporters see the same SDK records
either way.

The layout of the items and the channel's framing are the component side's
(``splight_runner.bootstrap.splight_capture.wire``): the runner may import the
component side, never the other way round.
"""

from __future__ import annotations

import time
from typing import Any

from splight_runner.bootstrap.splight_capture.values import valid_text
from splight_runner.bootstrap.splight_capture.wire import DROPPED, LOG, OTEL, STATUS
from splight_runner.engine import records

#: Loggers kept by name before the cache starts over (each holds its scope).
MAX_LOGGERS = 1024

#: OTel severity text for the standard level names that OTel spells differently.
_OTEL_LEVEL_TEXT = {"WARNING": "WARN", "CRITICAL": "FATAL"}
#: Scope of the records the runner makes itself (status events, drop reports).
RUNNER_SCOPE = "splight_runner"
STATUS_SCOPE = "splight_runner.health"
_EVENT_NAME_KEYS = ("otel.event.name", "event.name")


class FlatEmitter:
    """Turns flat items into SDK log records on one ``LoggerProvider``.

    Not thread-safe: one thread of the hosting process feeds it.
    """

    def __init__(self, provider: Any, *, code_attributes: bool = False) -> None:
        from opentelemetry._logs import LogRecord, SeverityNumber
        from opentelemetry.instrumentation.log_utils import std_to_otel
        from opentelemetry.trace import TraceFlags

        self._provider = provider
        self._code_attributes = code_attributes
        self._loggers: dict[str, Any] = {}
        self._LogRecord = LogRecord
        self._SeverityNumber = SeverityNumber
        self._TraceFlags = TraceFlags
        self._std_to_otel = std_to_otel
        #: The last status that went through, so the host knows whether a final one is owed.
        self.last_status: str | None = None

    def _logger(self, name: str) -> Any:
        logger = self._loggers.get(name)
        if logger is None:
            if len(self._loggers) >= MAX_LOGGERS:
                # Bounded: a component that makes a logger per request must not grow this forever.
                self._loggers.clear()
            # Empty scope attributes (what the exporters see is the same as none) keep the SDK's own
            # per-name logger cache out of it: that one is never trimmed.
            logger = self._loggers[name] = self._provider.get_logger(name, attributes={})
        return logger

    def emit(self, item: tuple[Any, ...]) -> None:
        kind = item[0]
        if kind == LOG:
            self.emit_log(item)
        elif kind == STATUS:
            # The component names splight-lib's engine state; what the platform calls it is decided here.
            status = records.platform_status(item[1])
            if status is not None:
                self.emit_status(status, item[2])
        elif kind == DROPPED:
            self.emit_drop_report(item[1], item[2], item[3])
        elif kind == OTEL:
            self.emit_otel(item)

    def emit_otel(self, item: tuple[Any, ...]) -> None:
        (_, scope, timestamp, observed, severity_number, severity_text, body, attributes, event_name, *ids) = item
        trace_id, span_id, trace_flags = ids
        self._logger(scope or "").emit(
            self._LogRecord(
                timestamp=timestamp or None,
                observed_timestamp=observed or None,
                trace_id=trace_id or None,
                span_id=span_id or None,
                trace_flags=self._TraceFlags(trace_flags) if trace_id else None,
                severity_text=severity_text,
                severity_number=self._SeverityNumber(severity_number) if severity_number else None,
                body=body,
                attributes=attributes,
                event_name=event_name,
            )
        )

    def emit_log(self, item: tuple[Any, ...]) -> None:
        (
            _,
            name,
            levelno,
            levelname,
            message,
            pathname,
            lineno,
            function,
            created,
            extras,
            exception,
            stack_info,
            trace_id,
            span_id,
            trace_flags,
        ) = item
        # The hook copies these as they are (a check per record would cost the component); text that
        # no UTF-8 encoder takes (a lone surrogate from a file name) is repaired here, off its thread.
        if not (message.isascii() and pathname.isascii() and name.isascii()):
            message, pathname, name = valid_text(message), valid_text(pathname), valid_text(name)
        if function is not None and not function.isascii():
            function = valid_text(function)
        if stack_info and not stack_info.isascii():
            stack_info = valid_text(stack_info)
        attributes: dict[str, Any] = {records.ATTR_CODE_FILE_PATH: pathname}
        if self._code_attributes:
            attributes[records.ATTR_CODE_FUNCTION] = function
            attributes[records.ATTR_CODE_LINE] = lineno
        event_name = None
        if extras:
            for key, value in extras.items():
                if key == "tags":
                    if value is not None:
                        attributes[records.ATTR_TAGS] = value
                elif key in _EVENT_NAME_KEYS:
                    event_name = event_name or value
                else:
                    attributes[key] = value
        if exception is not None:
            type_name, exc_message, text = exception
            if type_name:
                attributes[records.ATTR_EXCEPTION_TYPE] = type_name
                attributes[records.ATTR_EXCEPTION_MESSAGE] = exc_message
            if text:
                attributes[records.ATTR_EXCEPTION_STACKTRACE] = text
        elif stack_info:
            attributes[records.ATTR_EXCEPTION_STACKTRACE] = stack_info
        timestamp = int(created * 1e9)
        self._logger(name).emit(
            self._LogRecord(
                timestamp=timestamp,
                observed_timestamp=timestamp,
                trace_id=trace_id or None,
                span_id=span_id or None,
                trace_flags=self._TraceFlags(trace_flags) if trace_id else None,
                severity_text=_OTEL_LEVEL_TEXT.get(levelname, levelname),
                severity_number=self._std_to_otel(levelno),
                body=message,
                attributes=attributes,
                event_name=event_name if isinstance(event_name, str) else None,
            )
        )

    def emit_status(self, status: str, unix_nanos: int | None = None) -> None:
        """A health transition as the ``splight.component.status`` event."""
        self.last_status = status
        now = unix_nanos or time.time_ns()
        self._logger(STATUS_SCOPE).emit(
            self._LogRecord(
                timestamp=now,
                observed_timestamp=now,
                severity_text="INFO",
                severity_number=self._SeverityNumber.INFO,
                body=status,
                attributes={records.ATTR_STATUS: status},
                event_name=records.STATUS_EVENT_NAME,
            )
        )

    def emit_drop_report(self, count: int, first_ns: int, last_ns: int, limit: str = "") -> None:
        """One WARNING record saying how many records were dropped, and when."""
        if count <= 0:
            return
        now = time.time_ns()
        self._logger(RUNNER_SCOPE).emit(
            self._LogRecord(
                timestamp=now,
                observed_timestamp=now,
                severity_text="WARN",
                severity_number=self._SeverityNumber.WARN,
                body=records.drop_message(count, first_ns, last_ns, limit),
                attributes={records.ATTR_DROPPED_COUNT: count},
            )
        )
