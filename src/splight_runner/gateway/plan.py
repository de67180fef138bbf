"""A request's plan: every OTLP record translated once into the Engine calls it asks for, in order.

Log records become Engine records through :mod:`splight_runner.engine.records`,
the same function the in-process exporter uses; a health event becomes a
:class:`StatusEvent` with its own duplicate-suppression key. Runs of logs
between statuses keep their raw OTLP timestamps, which extend the key of every
logs/write body (see :mod:`splight_runner.gateway.memory`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from splight_runner.engine import records

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
        return any_value.string_value
    if kind == "kvlist_value":
        return {item.key: _value(item.value) for item in any_value.kvlist_value.values}
    if kind == "array_value":
        return [_value(item) for item in any_value.array_value.values]
    return getattr(any_value, kind)


def _resource_string(value: Any) -> str | None:
    converted = _value(value)
    if converted is None or converted == "":
        return None
    return converted if isinstance(converted, str) else str(converted)


@dataclass
class Logs:
    """A run of log records between statuses, with their raw timestamps for the dedup key."""

    records: list[dict[str, Any]]
    stamps: list[int]


@dataclass
class StatusEvent:
    process_id: str
    status: str
    key: bytes


@dataclass
class Plan:
    """What one request asks the Engine for, in order, and what it cannot deliver."""

    steps: list[Logs | StatusEvent]
    records: int
    missing_id: int


def plan_request(request: ExportLogsServiceRequest) -> Plan:
    """Translate every record once, keeping request order (logs runs split by statuses)."""
    steps: list[Logs | StatusEvent] = []
    run: Logs | None = None
    total = 0
    missing = 0
    engine_record = records.engine_record
    status_of = records.status_of
    used = _USED_ATTRIBUTES
    for resource_logs in request.resource_logs:
        process_id = None
        sender_type = "component"
        for attribute in resource_logs.resource.attributes:
            if attribute.key == records.RESOURCE_COMPONENT_ID:
                process_id = _resource_string(attribute.value)
            elif attribute.key == records.RESOURCE_PROCESS_TYPE:
                sender_type = _resource_string(attribute.value) or "component"
        for scope_logs in resource_logs.scope_logs:
            count = len(scope_logs.log_records)
            total += count
            if process_id is None:
                missing += count
                continue
            scope_name = scope_logs.scope.name or None
            for record in scope_logs.log_records:
                attributes = {item.key: _value(item.value) for item in record.attributes if item.key in used}
                body = _value(record.body)
                time_ns = record.time_unix_nano
                observed_ns = record.observed_time_unix_nano
                status = status_of(record.event_name or None, body, attributes)
                if status is not None:
                    run = None
                    key = hashlib.sha256(f"status\0{process_id}\0{status}\0{time_ns}\0{observed_ns}".encode()).digest()
                    steps.append(StatusEvent(process_id, status, key))
                    continue
                trace_id = record.trace_id
                span_id = record.span_id
                if run is None:
                    run = Logs([], [])
                    steps.append(run)
                run.records.append(
                    engine_record(
                        process_id=process_id,
                        sender_type=sender_type,
                        scope_name=scope_name,
                        body=body,
                        severity_number=record.severity_number,
                        severity_text=record.severity_text,
                        attributes=attributes,
                        timestamp_ns=time_ns or observed_ns,
                        trace_id=int.from_bytes(trace_id, "big") if len(trace_id) == 16 else 0,
                        span_id=int.from_bytes(span_id, "big") if len(span_id) == 8 else 0,
                    )
                )
                run.stamps.append(time_ns)
                run.stamps.append(observed_ns)
    return Plan(steps, total, missing)
