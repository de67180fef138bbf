"""OTel log record → Engine record: the one place the Engine's record shape is defined.

Both the in-process exporter (SDK ``ReadableLogRecord``) and the gateway (OTLP
protobuf/JSON) reduce a record to the same plain fields and call
:func:`engine_record` / :func:`status_of`, so a record reads the same in the
Engine whichever way it travelled.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NamedTuple
else:
    from splight_runner._tuples import NamedTuple


# The component side's rule for text, read here too: one rule for every side.

# --- OpenTelemetry names the runner writes and reads (one spelling for every side) ---
STATUS_EVENT_NAME = "splight.component.status"
ATTR_STATUS = "splight.component.status"
RESOURCE_COMPONENT_ID = "splight.component.id"
RESOURCE_PROCESS_TYPE = "splight.process.type"
#: splight-lib's ``tags=`` (``extra={"tags": ...}``).
ATTR_TAGS = "splight.tags"
#: Logger name for records without an instrumentation scope name (filelog).
ATTR_LOGGER_NAME = "splight.logger.name"
ATTR_CODE_FILE_PATH = "code.file.path"
ATTR_CODE_FILEPATH_OLD = "code.filepath"
ATTR_CODE_FUNCTION = "code.function.name"
ATTR_CODE_LINE = "code.line.number"
ATTR_EXCEPTION_TYPE = "exception.type"
ATTR_EXCEPTION_MESSAGE = "exception.message"
ATTR_EXCEPTION_STACKTRACE = "exception.stacktrace"

#: Every attribute :func:`engine_record` and :func:`status_of` read (the gateway converts only these).
ATTRIBUTES_READ = frozenset(
    {
        ATTR_STATUS,
        ATTR_TAGS,
        ATTR_LOGGER_NAME,
        ATTR_CODE_FILE_PATH,
        ATTR_CODE_FILEPATH_OLD,
        ATTR_EXCEPTION_STACKTRACE,
    }
)

#: Statuses the Engine accepts; splight-lib engine states pass through as they are.
ENGINE_STATUSES = frozenset({"Running", "Stopped", "Failed", "Succeeded", "Finished", "Initialized"})
#: Statuses after which the supervisor owes no final status.
TERMINAL_STATUSES = frozenset({"Stopped", "Failed", "Succeeded", "Finished"})


#: splight-lib engine states in the platform's deployment-status vocabulary (splight-agent's);
#: a state not in this table (``Initialized``, ``Unknown``) is not a deployment status and is not sent.
_PLATFORM_STATUS = {"Running": "Running", "Stopped": "Stopped", "Failed": "Failed", "Finished": "Succeeded"}
#: The process type whose processes have a deployment status; agents and compute nodes send records only.
COMPONENT = "component"
#: Attribute of the runner's own WARNING record that counts dropped records.
ATTR_DROPPED_COUNT = "splight.dropped.count"


class StatusUpdate(NamedTuple):
    """An ``update-status`` call: which process, which deployment status."""

    process_id: str
    status: str


#: What the delivery path carries to the Engine: a logs/write record (a plain dict, the
#: Engine's own shape, see :func:`engine_record`; or that record's compact JSON already made,
#: ``bytes``, see :class:`RecordJSON`) or a status update.
EngineRecord = dict | bytes
EngineItem = EngineRecord | StatusUpdate


def is_record(item: object) -> bool:
    """A logs/write record, in either form (not a status update, not a queue's marker)."""
    kind = type(item)
    return kind is dict or kind is bytes


def as_mapping(record: EngineRecord) -> Mapping[str, Any]:
    """A record as its fields, whichever form it is queued in (its JSON made already: ``bytes``)."""
    if type(record) is bytes:
        import json  # here: only a rare path reads a record made as JSON back

        return json.loads(record)  # type: ignore[no-any-return]
    return record  # type: ignore[return-value]


def platform_status(engine_state: str) -> str | None:
    """The deployment status a splight-lib engine state reports, None when it reports none."""
    return _PLATFORM_STATUS.get(engine_state)


def sends_status(process_type: str | None) -> bool:
    """Only components have a deployment status: an agent or compute node never sends one."""
    return (process_type or COMPONENT) == COMPONENT


def exit_status(exit_code: int, stopped: bool) -> str:
    """The status an ending implies: ``Stopped`` when the process was asked to stop
    (SIGTERM/SIGINT), whatever its exit code; else ``Succeeded`` for exit code 0
    and ``Failed`` for anything else (a non-zero code, death by another signal,
    an uncaught exception)."""
    if stopped:
        return "Stopped"
    return "Succeeded" if exit_code == 0 else "Failed"


def final_status(last_reported: str | None, ending: str | None) -> str | None:
    """The final status owed when a component's process ends, None when none is owed.

    ``ending`` is :func:`exit_status` (None: this process owes nothing). A
    ``Succeeded`` or ``Stopped`` ending is not sent when the last reported status
    is already terminal; a ``Failed`` one is sent unless the last is already
    ``Failed`` — a component that reported ``Stopped`` and then exited 1 ends
    ``Failed``, as the platform maps a container's exit code.
    """
    if ending is None:
        return None
    if ending == "Failed":
        return None if last_reported == "Failed" else "Failed"
    return None if last_reported in TERMINAL_STATUSES else ending


def drop_message(count: int, first_ns: int, last_ns: int, limit: str = "") -> str:
    """The text of the runner's WARNING record about records it had to drop."""
    why = f"its queue ({limit}) was full" if limit else "its queue was full"
    return (
        f"splight-runner dropped {count} log records made between {rfc3339(first_ns)} and "
        f"{rfc3339(last_ns)}: {why} while they could not be sent"
    )


_LEVEL_BY_SEVERITY_BAND = ("DEBUG", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_LEVEL_BY_TEXT = {
    "TRACE": "DEBUG",
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "NOTICE": "INFO",
    "WARN": "WARNING",
    "WARNING": "WARNING",
    "ERROR": "ERROR",
    "FATAL": "CRITICAL",
    "CRITICAL": "CRITICAL",
}


def loglevel(severity_number: int | None, severity_text: str | None) -> str:
    """The Engine's five level names from OTel severity (number first, as the spec ranks it)."""
    if severity_number and 1 <= severity_number <= 24:
        return _LEVEL_BY_SEVERITY_BAND[(severity_number - 1) // 4]
    if severity_text:
        text = severity_text.strip().upper()
        level = _LEVEL_BY_TEXT.get(text) or _LEVEL_BY_TEXT.get(text.rstrip("0123456789"))
        if level:
            return level
    return "INFO"


class _TimestampFormatter:
    """RFC 3339 UTC with microseconds; caches the per-second prefix (records come in bursts)."""

    __slots__ = ("_cached",)

    def __init__(self) -> None:
        #: (second, its prefix) as one value: threads that format at once never pair one's second
        #: with another's prefix.
        self._cached = (-1, "")

    def __call__(self, unix_nanos: int) -> str:
        second, nanos = divmod(unix_nanos, 1_000_000_000)
        cached_second, prefix = self._cached
        if second != cached_second:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._cached = (second, prefix)
        return f"{prefix}.{nanos // 1000:06d}Z"


rfc3339 = _TimestampFormatter()


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    try:
        import json  # here: only a value that is not text needs it, and json imports re

        return json.dumps(value, ensure_ascii=False, default=str)
    except Exception:  # a cycle, or a value whose str() raises: a record is never lost to its text
        try:
            return str(value)
        except Exception:
            return f"<unprintable {type(value).__name__}>"


def basename(path: Any) -> str:
    if not path:
        return ""
    path = str(path)
    cut = max(path.rfind("/"), path.rfind("\\"))
    return path[cut + 1 :] if cut >= 0 else path


def status_of(event_name: str | None, body: Any, attributes: Mapping[str, Any] | None) -> str | None:
    """The status a health event carries, or None when the record is an ordinary log.

    A record is a health event by its event name, or (for pipelines that drop
    the event name, e.g. older OTLP JSON producers) by the status attribute.
    """
    attribute = attributes.get(ATTR_STATUS) if attributes else None
    if event_name != STATUS_EVENT_NAME and attribute is None:
        return None
    status = attribute if attribute is not None else body
    if not isinstance(status, str) or status not in ENGINE_STATUSES:
        return None
    return status


#: The fields every Engine has always taken, in order (``SPLIGHT_RUNNER_RECORD_FIELDS=historical``).
HISTORICAL_FIELDS = ("sender_type", "id", "name", "message", "loglevel", "filename", "traceback", "tags")
#: True: :func:`engine_record` makes only :data:`HISTORICAL_FIELDS`. Set once, before any record is
#: made, by the set-up of whatever makes Engine records (:func:`send_historical_fields_only`).
_historical_only = False


def send_historical_fields_only(on: bool) -> None:
    """From now on :func:`engine_record` makes only :data:`HISTORICAL_FIELDS` (``on``) or every field."""
    global _historical_only
    _historical_only = on


def records_carry_timestamps() -> bool:
    """Whether Engine records carry their ``timestamp``.

    When they do not (``historical``), the Engine can only order them by arrival,
    so whoever sends them keeps one call in flight.
    """
    return not _historical_only


def engine_record(
    *,
    process_id: str,
    sender_type: str,
    scope_name: str | None,
    body: Any,
    severity_number: int | None,
    severity_text: str | None,
    attributes: Mapping[str, Any] | None,
    timestamp_ns: int | None,
    trace_id: int = 0,
    span_id: int = 0,
) -> dict[str, Any]:
    """The Engine's logs/write record: ``sender_type, id, name, message, loglevel, filename, traceback,
    tags, timestamp`` (RFC 3339 UTC), then ``trace_id``/``span_id`` when the record has them;
    only the first eight after :func:`send_historical_fields_only`.

    Keys and order are part of the contract with the Engine (what the dev-engine validates).
    """
    attributes = attributes or {}
    name = scope_name or attributes.get(ATTR_LOGGER_NAME) or ""
    filename = attributes.get(ATTR_CODE_FILE_PATH) or attributes.get(ATTR_CODE_FILEPATH_OLD)
    record: dict[str, Any] = {
        "sender_type": sender_type,
        "id": process_id,
        "name": _text(name),
        "message": _text(body),
        "loglevel": loglevel(severity_number, severity_text),
        "filename": basename(filename),
        "traceback": _text(attributes.get(ATTR_EXCEPTION_STACKTRACE)),
        "tags": attributes.get(ATTR_TAGS),
    }
    return with_time_and_trace(record, timestamp_ns, trace_id, span_id)


def with_time_and_trace(
    record: dict[str, Any], timestamp_ns: int | None, trace_id: int, span_id: int
) -> dict[str, Any]:
    """``record`` (its first eight fields) completed with ``timestamp`` (now, without one) and the trace
    and span ids it has; as it is after :func:`send_historical_fields_only`."""
    if _historical_only:
        return record
    record["timestamp"] = rfc3339(timestamp_ns if timestamp_ns else time.time_ns())
    if trace_id:
        record["trace_id"] = f"{trace_id:032x}"
        if span_id:
            record["span_id"] = f"{span_id:016x}"
    return record


#: One encoder for every record (``json.dumps`` with options builds a new one per call), made with the
#: first record: a run whose Engine only hears statuses (form bodies) never imports ``json`` (and ``re``).
_ENCODER: Any = None


def json_encoder() -> Any:
    """The Engine's JSON encoder: compact, UTF-8 text as it is, no NaN, ``str()`` of what JSON cannot hold."""
    global _ENCODER
    if _ENCODER is None:
        import json

        _ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str)
    return _ENCODER


class RecordJSON:
    """The compact JSON of a usual record, made straight from its fields, as ``bytes``.

    What the Engine's JSON encoder (:func:`json_encoder`) makes of
    :func:`engine_record`'s dict for a record whose text fields are ASCII (the
    usual ``logger.info``; its tags any value), byte for byte, in a third of the
    time: no dict in between, no encoder walking it, and the body of a POST is
    these joined (``engine.client.pack_records``). The runner's direct path
    makes its usual records this way; a property test holds the two to the
    same bytes. Raises what the encoder raises for tags it cannot take (NaN,
    a lone surrogate): the caller makes that record the dict way instead.
    """

    __slots__ = ("_head", "_quote")

    def __init__(self, process_id: str, sender_type: str) -> None:
        try:
            from _json import encode_basestring  # the C function json's encoder uses; without json's imports
        except ImportError:  # an interpreter without the accelerator
            from json.encoder import encode_basestring
        self._quote = encode_basestring
        self._head = f'{{"sender_type":{encode_basestring(sender_type)},"id":{encode_basestring(process_id)},"name":'

    def __call__(
        self,
        name: str,
        message: str,
        level: str,
        filename: str,
        tags: Any,
        timestamp_ns: int,
        trace_id: int,
        span_id: int,
    ) -> bytes:
        """``level`` one of the Engine's five names; the other text ASCII (the caller checks)."""
        quote = self._quote
        if tags is None:
            tags_json = "null"
        elif type(tags) is str:
            tags_json = quote(tags)
        else:
            tags_json = json_encoder().encode(tags)
        text = (
            f'{self._head}{quote(name)},"message":{quote(message)},"loglevel":"{level}",'
            f'"filename":{quote(filename)},"traceback":"","tags":{tags_json}'
        )
        if _historical_only:
            return f"{text}}}".encode()
        stamp = rfc3339(timestamp_ns if timestamp_ns else time.time_ns())
        if not trace_id:
            return f'{text},"timestamp":"{stamp}"}}'.encode()
        ids = f',"trace_id":"{trace_id:032x}"' + (f',"span_id":"{span_id:016x}"' if span_id else "")
        return f'{text},"timestamp":"{stamp}"{ids}}}'.encode()


def _plain(attributes: Any) -> Mapping[str, Any]:
    """The plain dict inside the SDK's ``BoundedAttributes`` (its ``get`` is a slow Python-level
    ``__getitem__``, and this runs once per attribute per record); the mapping itself otherwise."""
    if attributes is None:
        return {}
    inner = getattr(attributes, "_dict", None)
    return inner if isinstance(inner, dict) else attributes


def from_sdk(readable: Any, default_process_id: str | None, default_sender_type: str) -> tuple[str, Any]:
    """Classify an SDK ``ReadableLogRecord``: ``("status", (id, status))`` or ``("log", record)``.

    ``("skip", reason)`` when the record cannot be sent (no process id).
    """
    item, _ = _sdk_item(readable, default_process_id, default_sender_type)
    if isinstance(item, str):
        return "skip", item
    if type(item) is StatusUpdate:
        return "status", tuple(item)
    return "log", item


def _sdk_item(readable: Any, default_process_id: str | None, default_sender_type: str) -> tuple[EngineItem | str, str]:
    """The Engine item of an SDK record (or why it has none), and its sender type: the resource read once."""
    log_record = readable.log_record
    resource_attrs = _plain(readable.resource.attributes) if readable.resource is not None else {}
    sender_type = str(resource_attrs.get(RESOURCE_PROCESS_TYPE) or default_sender_type)
    process_id = resource_attrs.get(RESOURCE_COMPONENT_ID) or default_process_id
    if not process_id:
        return "no splight.component.id", sender_type
    scope = readable.instrumentation_scope
    severity = log_record.severity_number
    item = engine_item(
        process_id=str(process_id),
        sender_type=sender_type,
        scope_name=scope.name if scope is not None else None,
        body=log_record.body,
        severity_number=severity.value if severity is not None else None,
        severity_text=log_record.severity_text,
        attributes=_plain(log_record.attributes),
        event_name=log_record.event_name,
        timestamp_ns=log_record.timestamp or log_record.observed_timestamp,
        trace_id=log_record.trace_id or 0,
        span_id=log_record.span_id or 0,
    )
    return item, sender_type


def engine_item(
    *,
    process_id: str,
    sender_type: str,
    scope_name: str | None,
    body: Any,
    severity_number: int | None,
    severity_text: str | None,
    attributes: Mapping[str, Any] | None,
    event_name: str | None,
    timestamp_ns: int | None,
    trace_id: int = 0,
    span_id: int = 0,
) -> EngineItem:
    """What one OTel log record is to the Engine: a status update (a health event) or a logs/write record.

    The one rule for every path: an SDK record (:func:`from_sdk`), a flat record
    the runner takes straight to the Engine (``pipeline.flat.EngineEmitter``).
    """
    status = status_of(event_name, body, attributes)
    if status is not None:
        return StatusUpdate(process_id, status)
    return engine_record(
        process_id=process_id,
        sender_type=sender_type,
        scope_name=scope_name,
        body=body,
        severity_number=severity_number,
        severity_text=severity_text,
        attributes=attributes,
        timestamp_ns=timestamp_ns,
        trace_id=trace_id,
        span_id=span_id,
    )


def item_from_sdk(readable: Any, default_process_id: str | None, default_sender_type: str) -> EngineItem | str | None:
    """What the delivery path carries of an SDK record: an :data:`EngineItem`, None for a status this
    sender does not send (an agent's), or the reason (a ``str``) why the record cannot be sent."""
    item, sender_type = _sdk_item(readable, default_process_id, default_sender_type)
    if type(item) is StatusUpdate and not sends_status(sender_type):
        return None
    return item
