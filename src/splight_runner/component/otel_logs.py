"""Records made through the OpenTelemetry Logs API, under the runner: to the supervisor's pipeline.

When spans are exported the component has the SDK's own providers (built by
upstream's set-up); its ``LoggerProvider`` then gets this processor and no
exporter, so a record emitted through the Logs API takes the channel like a
``logging`` record and is exported by the supervisor with the same resource.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk._logs import LogRecordProcessor

from splight_runner.component.channel import Channel
from splight_runner.pipeline.flat import OTEL, plain_value


class ChannelLogRecordProcessor(LogRecordProcessor):
    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def on_emit(self, log_record: Any) -> None:  # type: ignore[override]
        try:
            record = log_record.log_record
            scope = log_record.instrumentation_scope
            severity = record.severity_number
            attributes = dict(record.attributes) if record.attributes else None
            self._channel.submit(
                (
                    OTEL,
                    scope.name if scope is not None else "",
                    record.timestamp or 0,
                    record.observed_timestamp or 0,
                    severity.value if severity is not None else 0,
                    record.severity_text,
                    plain_value(record.body),
                    plain_value(attributes) if attributes else None,
                    record.event_name,
                    record.trace_id or 0,
                    record.span_id or 0,
                    int(record.trace_flags or 0),
                )
            )
        except Exception:
            pass  # capture must never be why a call fails

    def emit(self, log_record: Any) -> None:
        self.on_emit(log_record)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._channel.write()
