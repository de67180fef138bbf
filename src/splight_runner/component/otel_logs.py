"""Records made through the OpenTelemetry Logs API, under the runner: to the supervisor's pipeline.

Two ways in, one conversion (:func:`flat_record`):

* default configuration (no spans exported): no SDK in the component at all. The
  API's global logger provider is loaded on first use from the
  ``opentelemetry_logger_provider`` entry point named ``splight``
  (``OTEL_PYTHON_LOGGER_PROVIDER``), :class:`ChannelLoggerProvider`: nothing is
  imported at start-up for a component that never uses the Logs API;
* spans exported: upstream's set-up builds the SDK providers and its
  ``LoggerProvider`` gets :class:`ChannelLogRecordProcessor` and no exporter.

Either way a record takes the channel like a ``logging`` record and the
supervisor exports it with the component's resource.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry._logs import Logger, LoggerProvider

from splight_runner.component import channel as _channel
from splight_runner.component.capture import current_context, span_ids
from splight_runner.pipeline.flat import OTEL, plain_value


def flat_record(
    scope: str | None,
    *,
    timestamp: int | None,
    observed_timestamp: int | None,
    severity_number: Any,
    severity_text: str | None,
    body: Any,
    attributes: Any,
    event_name: str | None,
    trace_id: int,
    span_id: int,
    trace_flags: int,
) -> tuple[Any, ...]:
    return (
        OTEL,
        scope or "",
        timestamp or 0,
        observed_timestamp or time.time_ns(),
        getattr(severity_number, "value", severity_number) or 0,
        severity_text,
        plain_value(body),
        plain_value(dict(attributes)) if attributes else None,
        event_name,
        trace_id or 0,
        span_id or 0,
        int(trace_flags or 0),
    )


def _span_ids(context: Any) -> tuple[int, int, int]:
    """The ids of the span active in ``context`` (the caller's context when none is given)."""
    return span_ids(context if context is not None else current_context())


class _ChannelLogger(Logger):
    def emit(self, record: Any = None, **fields: Any) -> None:  # type: ignore[override]
        try:
            if record is not None:
                fields = {name: getattr(record, name, None) for name in _FIELDS}
                ids = (record.trace_id or 0, record.span_id or 0, int(record.trace_flags or 0))
                if not ids[0]:
                    ids = _span_ids(getattr(record, "context", None))
            else:
                ids = _span_ids(fields.get("context"))
            current = _channel.current
            if current is not None:
                current.submit(
                    flat_record(
                        self._name,
                        timestamp=fields.get("timestamp"),
                        observed_timestamp=fields.get("observed_timestamp"),
                        severity_number=fields.get("severity_number"),
                        severity_text=fields.get("severity_text"),
                        body=fields.get("body"),
                        attributes=fields.get("attributes"),
                        event_name=fields.get("event_name"),
                        trace_id=ids[0],
                        span_id=ids[1],
                        trace_flags=ids[2],
                    )
                )
        except Exception:
            pass  # capture must never be why a call fails

    def enabled(self, **kwargs: Any) -> bool:
        return _channel.current is not None


_FIELDS = (
    "timestamp",
    "observed_timestamp",
    "severity_number",
    "severity_text",
    "body",
    "attributes",
    "event_name",
)


class ChannelLoggerProvider(LoggerProvider):
    """The API logger provider of a supervised component that exports no spans (no SDK needed)."""

    def get_logger(
        self, name: str, version: str | None = None, schema_url: str | None = None, attributes: Any = None
    ) -> Logger:
        return _ChannelLogger(name, version, schema_url, attributes)


class ChannelLogRecordProcessor:
    """A log record processor (duck-typed: no SDK import here) that hands SDK records to the channel."""

    def __init__(self, channel_: Any) -> None:
        self._channel = channel_

    def on_emit(self, log_record: Any) -> None:
        try:
            record = log_record.log_record
            scope = log_record.instrumentation_scope
            self._channel.submit(
                flat_record(
                    scope.name if scope is not None else "",
                    timestamp=record.timestamp,
                    observed_timestamp=record.observed_timestamp,
                    severity_number=record.severity_number,
                    severity_text=record.severity_text,
                    body=record.body,
                    attributes=record.attributes,
                    event_name=record.event_name,
                    trace_id=record.trace_id or 0,
                    span_id=record.span_id or 0,
                    trace_flags=int(record.trace_flags or 0),
                )
            )
        except Exception:
            pass  # capture must never be why a call fails

    emit = on_emit

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._channel.write()
