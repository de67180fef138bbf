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
either way. When the Engine is the runner's only destination, :class:`EngineEmitter`
takes the same items straight to Engine records instead, without the SDK: the
Engine never sees an SDK record, and building one per record was half of the
runner's cost per record and most of its start-up. Both emitters read an item
with the same functions (:func:`log_fields`, :func:`severity_number`) and make
the Engine's shape with the same rule (``engine.records.engine_item``); a
property test holds the two paths to the same Engine records, byte for byte.

The layout of the items and the channel's framing are the component side's
(``splight_runner.bootstrap.splight_capture.wire``): the runner may import the
component side, never the other way round.
"""

from __future__ import annotations

import time

from splight_runner.bootstrap.splight_capture.values import valid_text
from splight_runner.bootstrap.splight_capture.wire import DROPPED, LOG, OTEL, STATUS
from splight_runner.engine import records

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NamedTuple
else:
    from splight_runner._tuples import NamedTuple


#: Loggers kept by name before the cache starts over (each holds its scope); file names by path, too.
MAX_LOGGERS = 1024
#: Characters of a message past which a record takes the dict (which a POST's limit can cut) instead
#: of :class:`~splight_runner.engine.records.RecordJSON`.
_USUAL_TEXT = 1 << 16

#: OTel severity text for the standard level names that OTel spells differently.
_OTEL_LEVEL_TEXT = {"WARNING": "WARN", "CRITICAL": "FATAL"}
#: Scope of the records the runner makes itself (status events, drop reports).
RUNNER_SCOPE = "splight_runner"
STATUS_SCOPE = "splight_runner.health"
#: OpenTelemetry's severity numbers of the records the runner makes itself.
SEVERITY_INFO = 9
SEVERITY_WARN = 13
_EVENT_NAME_KEYS = ("otel.event.name", "event.name")
_READ_BY_THE_ENGINE = records.ATTRIBUTES_READ


#: ``logging`` level numbers 10-53 in OpenTelemetry's severity numbers: a level's base number
#: (DEBUG 5, INFO 9, WARN 13, ERROR 17, FATAL 21) plus up to 3 for the levels just above it.
_SEVERITY_BASE = {1: 5, 2: 9, 3: 13, 4: 17, 5: 21}


def severity_number(levelno: int) -> int:
    """OpenTelemetry's severity number of a ``logging`` level (0, unspecified, below DEBUG).

    The mapping of the ``logging`` instrumentation's ``std_to_otel``, without
    importing it (the direct path imports no OpenTelemetry).
    """
    if levelno < 10:
        return 0
    if levelno > 53:
        return 24
    band, step = divmod(levelno, 10)
    return _SEVERITY_BASE[band] + min(step, 3)


def attribute_value(value: Any) -> Any:
    """``value`` as an OpenTelemetry attribute holds it: sequences as tuples, mappings without empty keys.

    The SDK cleans every attribute value that way (an empty key is dropped with
    a warning); an attribute the Engine reads (``tags``, the file path, a
    stack) is cleaned the same on every path, so the Engine receives the same
    record whether an SDK record was made or not.
    """
    if isinstance(value, dict):
        return {key: attribute_value(inner) for key, inner in value.items() if key}
    if isinstance(value, (list, tuple)):
        return tuple(attribute_value(inner) for inner in value)
    return value


class LogFields(NamedTuple):
    """What a flat LOG item says, in OpenTelemetry's terms (see :func:`log_fields`)."""

    scope: str
    timestamp: int
    severity_number: int
    severity_text: str
    body: str
    attributes: dict[str, Any]
    event_name: str | None
    trace_id: int
    span_id: int
    trace_flags: int


def log_fields(item: tuple[Any, ...], code_attributes: bool = False) -> LogFields:
    """A flat LOG item read as one OpenTelemetry log record: the one rule both emitters follow."""
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
    if code_attributes:
        attributes[records.ATTR_CODE_FUNCTION] = function
        attributes[records.ATTR_CODE_LINE] = lineno
    event_name = None
    if extras:
        for key, value in extras.items():
            if key == "tags":
                if value is not None:
                    attributes[records.ATTR_TAGS] = attribute_value(value)
            elif key in _EVENT_NAME_KEYS:
                event_name = event_name or value
            elif key in _READ_BY_THE_ENGINE:
                attributes[key] = attribute_value(value)
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
    return LogFields(
        name,
        int(created * 1e9),
        severity_number(levelno),
        _OTEL_LEVEL_TEXT.get(levelname, levelname),
        message,
        attributes,
        event_name if isinstance(event_name, str) else None,
        trace_id,
        span_id,
        trace_flags,
    )


def status_fields(status: str) -> tuple[dict[str, Any], str]:
    """The attributes and event name of the ``splight.component.status`` event."""
    return {records.ATTR_STATUS: status}, records.STATUS_EVENT_NAME


class _Emitter:
    """Reads the kind of each flat item; the subclasses say what a record becomes."""

    #: The last status that went through, so the host knows whether a final one is owed.
    last_status: str | None = None

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

    def emit_log(self, item: tuple[Any, ...]) -> None:
        raise NotImplementedError

    def emit_otel(self, item: tuple[Any, ...]) -> None:
        raise NotImplementedError

    def emit_status(self, status: str, unix_nanos: int | None = None) -> None:
        raise NotImplementedError

    def emit_drop_report(self, count: int, first_ns: int, last_ns: int, limit: str = "") -> None:
        raise NotImplementedError


class FlatEmitter(_Emitter):
    """Turns flat items into SDK log records on one ``LoggerProvider``.

    Not thread-safe: one thread of the hosting process feeds it.
    """

    def __init__(self, provider: Any, *, code_attributes: bool = False) -> None:
        from opentelemetry._logs import LogRecord, SeverityNumber
        from opentelemetry.trace import TraceFlags

        self._provider = provider
        self._code_attributes = code_attributes
        self._loggers: dict[str, Any] = {}
        self._LogRecord = LogRecord
        self._SeverityNumber = SeverityNumber
        self._TraceFlags = TraceFlags
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
        fields = log_fields(item, self._code_attributes)
        trace_id = fields.trace_id
        self._logger(fields.scope).emit(
            self._LogRecord(
                timestamp=fields.timestamp,
                observed_timestamp=fields.timestamp,
                trace_id=trace_id or None,
                span_id=fields.span_id or None,
                trace_flags=self._TraceFlags(fields.trace_flags) if trace_id else None,
                severity_text=fields.severity_text,
                severity_number=self._SeverityNumber(fields.severity_number),
                body=fields.body,
                attributes=fields.attributes,
                event_name=fields.event_name,
            )
        )

    def emit_status(self, status: str, unix_nanos: int | None = None) -> None:
        """A health transition as the ``splight.component.status`` event."""
        self.last_status = status
        now = unix_nanos or time.time_ns()
        attributes, event_name = status_fields(status)
        self._logger(STATUS_SCOPE).emit(
            self._LogRecord(
                timestamp=now,
                observed_timestamp=now,
                severity_text="INFO",
                severity_number=self._SeverityNumber.INFO,
                body=status,
                attributes=attributes,
                event_name=event_name,
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


class EngineEmitter(_Emitter):
    """Turns flat items straight into Engine records and status updates, queued for the Engine.

    The runner's path when ``splight`` is its only destination: no SDK record,
    no OpenTelemetry import. Not thread-safe: one thread of the runner feeds it.
    """

    def __init__(self, queue: Any, *, process_id: str | None, sender_type: str) -> None:
        #: The Engine queue (``pipeline.dispatch.EngineQueue``): ``put`` and its ``delivery``.
        self._queue = queue
        self._process_id = process_id
        self._sender_type = sender_type
        self._sends_status = records.sends_status(sender_type)
        self.last_status: str | None = None
        #: The Engine's level name by (levelno, levelname): a handful of pairs, read per record.
        self._levels: dict[tuple[int, str], str] = {}
        #: The file name of each path records came from (a component logs from a handful of files).
        self._basenames: dict[str, str] = {}
        #: Made with the first usual record, not here: it loads ``_json`` (a shared library), which a run
        #: that logs nothing never needs. Usable when its ASCII prefix can be made (else every record
        #: takes the dict).
        self._json: records.RecordJSON | None = None
        self._json_usable = bool(process_id) and (process_id or "").isascii() and sender_type.isascii()

    def _put(self, **fields: Any) -> None:
        process_id = self._process_id
        if not process_id:
            self._queue.delivery.count_unsendable(
                "record-skipped", "a log record cannot be sent (no splight.component.id); dropped"
            )
            return
        item = records.engine_item(process_id=process_id, sender_type=self._sender_type, **fields)
        if type(item) is records.StatusUpdate and not self._sends_status:
            return  # an agent's or compute node's: not a record, not sent (as on the SDK path)
        self._queue.put(item)

    def emit_log(self, item: tuple[Any, ...]) -> None:
        record = self._plain_record(item)
        if record is not None:
            self._queue.put(record)
            return
        fields = log_fields(item)
        self._put(
            scope_name=fields.scope,
            body=fields.body,
            severity_number=fields.severity_number,
            severity_text=fields.severity_text,
            attributes=fields.attributes,
            event_name=fields.event_name,
            timestamp_ns=fields.timestamp,
            trace_id=fields.trace_id,
            span_id=fields.span_id,
        )

    def _plain_record(self, item: tuple[Any, ...]) -> bytes | None:
        """The Engine record of the usual ``logging`` record, as its JSON, made in one step; None for any other.

        Usual: ASCII text, no exception or stack, no extra but ``tags`` (so it
        cannot be a health event), text short enough never to need cutting
        for a POST. It is what :func:`log_fields` then ``records.engine_item`` and
        the Engine's encoder make of it, without the OpenTelemetry attributes or a
        dict in between: the property tests of the two paths hold the two to the
        same bytes. About two thirds of the runner's CPU per record, before.
        """
        _, name, levelno, levelname, message, pathname = item[:6]  # the LOG layout: see log_fields
        created, extras, exception, stack_info, trace_id, span_id = item[8:14]
        if exception is not None or stack_info is not None or not self._json_usable:
            return None
        tags = None
        if extras is not None:
            if len(extras) != 1 or "tags" not in extras:
                return None
            tags = extras["tags"]
            if tags is not None and type(tags) is not str:
                tags = attribute_value(tags)
        if len(message) > _USUAL_TEXT or not (message.isascii() and pathname.isascii() and name.isascii()):
            return None
        level = self._levels.get((levelno, levelname))
        if level is None:
            level = records.loglevel(severity_number(levelno), _OTEL_LEVEL_TEXT.get(levelname, levelname))
            self._levels[(levelno, levelname)] = level
        filename = self._basenames.get(pathname)
        if filename is None:
            if len(self._basenames) >= MAX_LOGGERS:
                self._basenames.clear()
            filename = self._basenames[pathname] = records.basename(pathname)
        make = self._json
        if make is None:
            make = self._json = records.RecordJSON(self._process_id or "", self._sender_type)
        try:
            return make(name, message, level, filename, tags, int(created * 1e9), trace_id, span_id)
        except (ValueError, TypeError, RecursionError, UnicodeEncodeError):
            return None  # tags JSON does not take as they are (NaN, a lone surrogate): the dict repairs them

    def emit_otel(self, item: tuple[Any, ...]) -> None:
        (_, scope, timestamp, observed, severity_number_, severity_text, body, attributes, event_name, *ids) = item
        trace_id, span_id, _flags = ids
        if attributes:
            read = records.ATTRIBUTES_READ
            attributes = {key: attribute_value(value) if key in read else value for key, value in attributes.items()}
        self._put(
            scope_name=scope or "",
            body=body,
            severity_number=severity_number_ or None,
            severity_text=severity_text,
            attributes=attributes,
            event_name=event_name,
            timestamp_ns=timestamp or observed or None,
            trace_id=trace_id or 0,
            span_id=span_id or 0,
        )

    def emit_status(self, status: str, unix_nanos: int | None = None) -> None:
        """A health transition as the ``splight.component.status`` event would reach the Engine."""
        self.last_status = status
        attributes, event_name = status_fields(status)
        self._put(
            scope_name=STATUS_SCOPE,
            body=status,
            severity_number=SEVERITY_INFO,
            severity_text="INFO",
            attributes=attributes,
            event_name=event_name,
            timestamp_ns=unix_nanos or time.time_ns(),
        )

    def emit_drop_report(self, count: int, first_ns: int, last_ns: int, limit: str = "") -> None:
        """One WARNING record saying how many records were dropped, and when."""
        if count <= 0:
            return
        self._put(
            scope_name=RUNNER_SCOPE,
            body=records.drop_message(count, first_ns, last_ns, limit),
            severity_number=SEVERITY_WARN,
            severity_text="WARN",
            attributes={records.ATTR_DROPPED_COUNT: count},
            event_name=None,
            timestamp_ns=time.time_ns(),
        )
