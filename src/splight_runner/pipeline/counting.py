"""Counting wrappers for the OpenTelemetry destinations (``otlp``, ``console``): what reached them, what they took.

The SDK's ``BatchLogRecordProcessor`` drops silently when full and its
exporters say nothing per record; the exit report needs both numbers to say
how many records a destination did not get.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk._logs import LogRecordProcessor
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult


class CountingExporter(LogRecordExporter):
    """Counts what reached its exporter and what the exporter confirmed, for the exit report."""

    def __init__(self, name: str, inner: LogRecordExporter) -> None:
        self.name = name
        self._inner = inner
        self.exported = 0

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        result = self._inner.export(batch)
        if result == LogRecordExportResult.SUCCESS:
            self.exported += len(batch)
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class CountingProcessor(LogRecordProcessor):
    """Counts records handed to a processor (the SDK's batch processor drops silently when full)."""

    def __init__(self, inner: LogRecordProcessor, exporter: CountingExporter) -> None:
        self._inner = inner
        self.exporter = exporter
        self.emitted = 0

    def on_emit(self, log_record: Any) -> None:  # type: ignore[override]
        self.emitted += 1
        self._inner.on_emit(log_record)

    def emit(self, log_record: Any) -> None:
        self.on_emit(log_record)

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def undelivered(self) -> int:
        return max(0, self.emitted - self.exporter.exported)
