"""The ``splight`` logs exporter: Engine delivery behind the SDK's exporter interface.

:class:`SplightLogExporter` is a standard SDK ``LogRecordExporter`` (entry point
``opentelemetry_logs_exporter: splight``). It turns SDK records into Engine
records with :func:`splight_runner.engine.records.item_from_sdk` (:func:`convert`,
used by the Splight processor too) and delivers them with
:class:`~splight_runner.pipeline.delivery.EngineDelivery`, of which it is a
subclass. The processor that gives it its delivery guarantees is
:class:`splight_runner.pipeline.processor.SplightLogRecordProcessor`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from splight_runner.engine import records
from splight_runner.engine.records import EngineItem
from splight_runner.pipeline.delivery import DeliveryStats, EngineDelivery, describe


def convert(readable: ReadableLogRecord, delivery: EngineDelivery) -> EngineItem | None:
    """The Engine record or status update of an SDK record; None (counted as rejected, said) when there is none."""
    try:
        item = records.item_from_sdk(readable, delivery.process_id, delivery.sender_type)
    except Exception as error:
        delivery.count_unsendable(
            "unconvertible-record", f"a log record could not be converted ({describe(error)}); dropped"
        )
        return None
    if isinstance(item, str):
        delivery.count_unsendable("record-skipped", f"a log record cannot be sent ({item}); dropped")
        return None
    return item  # None too: a status this sender does not send (not a record, not counted)


class SplightLogExporter(EngineDelivery, LogRecordExporter):
    """Sends SDK log records to ``logs/write`` and health events to ``update-status``."""

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        """Deliver ``batch``, retrying transient failures for at most the export timeout."""
        items = [item for item in (convert(readable, self) for readable in batch) if item is not None]
        give_up_at = time.monotonic() + self._timeout
        delivered = self.deliver(items, lambda: give_up_at, hold=False)
        return LogRecordExportResult.SUCCESS if delivered else LogRecordExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


__all__ = ["DeliveryStats", "SplightLogExporter", "convert"]
