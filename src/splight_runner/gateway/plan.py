"""A request's plan: the Engine calls a checked request asks for, in order, made one POST at a time.

Log records become Engine records through :mod:`splight_runner.engine.records`,
the same function the in-process exporter uses; a health event becomes a
:class:`StatusEvent` with its own duplicate-suppression key. :meth:`Plan.steps`
translates lazily: at most one logs/write POST's worth of records
(:data:`~splight_runner.engine.client.MAX_RECORDS_PER_POST`) exists as Engine
records at a time, and only while the gateway delivers (after it took a slot).
Runs of logs keep their raw OTLP timestamps, which extend the key of every
logs/write body (see :mod:`splight_runner.gateway.memory`).

Timestamps never come from the gateway's clock, so a retry of the same bytes
translates to the same bodies whenever it comes: a record's ``time_unix_nano``,
else its ``observed_time_unix_nano`` (OTLP senders set it), else the timestamp
of the record before it in the request, else the Unix epoch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from splight_runner.engine import records
from splight_runner.engine.client import MAX_BYTES_PER_POST, MAX_RECORDS_PER_POST
from splight_runner.gateway.otlp_http import LogsRequest

#: Only the attributes translation reads are converted from protobuf: the rest
#: (thread ids, code function, anything a user attached) cannot change the Engine
#: record, and converting them would cost most of the per-record time.
_USED_ATTRIBUTES = records.ATTRIBUTES_READ


def _value(any_value: Any) -> Any:
    """An OTLP ``AnyValue`` as the Python value the SDK would hold (``None`` when empty)."""
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":
        # Longer than a whole POST: the Engine record is cut with a visible marker anyway
        # (pack_records); cutting here first keeps a 16 MB string from being copied around.
        text = any_value.string_value
        return text if len(text) <= MAX_BYTES_PER_POST else text[: MAX_BYTES_PER_POST + 1]
    if kind == "kvlist_value":
        return {item.key: _value(item.value) for item in any_value.kvlist_value.values}
    if kind == "array_value":
        return [_value(item) for item in any_value.array_value.values]
    return getattr(any_value, kind)


#: The timestamp of a record with none and nothing before it in the request: 1 ns after
#: the Unix epoch (0 would make the translation stamp the current time).
_NO_TIME = 1


def _resource_string(value: Any) -> str | None:
    converted = _value(value)
    if converted is None or converted == "":
        return None
    return converted if isinstance(converted, str) else str(converted)


@dataclass
class Logs:
    """A run of log records (about one POST's worth) with their raw timestamps for the dedup key."""

    records: list[dict[str, Any]]
    stamps: list[int]


@dataclass
class StatusEvent:
    process_id: str
    status: str
    key: bytes


class Plan:
    """What one checked request asks the Engine for: counted now, translated by :meth:`steps`."""

    def __init__(self, request: LogsRequest) -> None:
        self.request = request
        self.records = request.records
        #: Records that cannot be delivered (no component id); known once :meth:`steps` ran.
        self.missing_id = 0

    def steps(
        self, chunk: int = MAX_RECORDS_PER_POST, chunk_bytes: int = MAX_BYTES_PER_POST
    ) -> Iterator[Logs | StatusEvent]:
        """The Engine calls in request order: runs of at most ``chunk`` log records (and about
        ``chunk_bytes`` of them on the wire), and statuses."""
        run = Logs([], [])
        size = 0
        previous = _NO_TIME
        self.missing_id = 0
        engine_record = records.engine_record
        status_of = records.status_of
        used = _USED_ATTRIBUTES
        for scope in self.request.scopes():
            process_id = None
            sender_type = "component"
            for attribute in scope.resource.attributes:
                if attribute.key == records.RESOURCE_COMPONENT_ID:
                    process_id = _resource_string(attribute.value)
                elif attribute.key == records.RESOURCE_PROCESS_TYPE:
                    sender_type = _resource_string(attribute.value) or "component"
            scope_name = scope.scope_name or None
            for record, wire_size in scope.records:
                if process_id is None:
                    self.missing_id += 1
                    continue
                attributes = {item.key: _value(item.value) for item in record.attributes if item.key in used}
                body = _value(record.body)
                time_ns = record.time_unix_nano
                observed_ns = record.observed_time_unix_nano
                status = status_of(record.event_name or None, body, attributes)
                if status is not None:
                    if run.records:
                        yield run
                        run, size = Logs([], []), 0
                    key = hashlib.sha256(f"status\0{process_id}\0{status}\0{time_ns}\0{observed_ns}".encode()).digest()
                    yield StatusEvent(process_id, status, key)
                    continue
                previous = time_ns or observed_ns or previous
                trace_id = record.trace_id
                span_id = record.span_id
                run.records.append(
                    engine_record(
                        process_id=process_id,
                        sender_type=sender_type,
                        scope_name=scope_name,
                        body=body,
                        severity_number=record.severity_number,
                        severity_text=record.severity_text,
                        attributes=attributes,
                        timestamp_ns=previous,
                        trace_id=int.from_bytes(trace_id, "big") if len(trace_id) == 16 else 0,
                        span_id=int.from_bytes(span_id, "big") if len(span_id) == 8 else 0,
                    )
                )
                run.stamps.append(time_ns)
                run.stamps.append(observed_ns)
                size += wire_size
                if len(run.records) >= chunk or size >= chunk_bytes:
                    yield run
                    run, size = Logs([], []), 0
        if run.records:
            yield run


def plan_request(request: LogsRequest) -> Plan:
    """The :class:`Plan` of a checked request (nothing is translated yet)."""
    return Plan(request)
