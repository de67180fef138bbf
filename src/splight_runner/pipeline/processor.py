"""The processor the distro pairs with the ``splight`` exporter: the Engine queue behind the SDK's interface.

:class:`SplightLogRecordProcessor` is used instead of the SDK's
``BatchLogRecordProcessor`` wherever the SDK pipeline runs (under
``opentelemetry-instrument``, and in the runner when an OpenTelemetry exporter is
a destination too): each SDK record is made into its Engine record as it is
emitted (:func:`splight_runner.pipeline.exporter.convert`) and queued in
:class:`~splight_runner.pipeline.dispatch.EngineQueue`, which gives the Engine
path its guarantees (see there). An Engine record is also smaller to hold than
the SDK's record it came from.
"""

from __future__ import annotations

from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord

from splight_runner import settings as config
from splight_runner.pipeline.accounting import DropCounter
from splight_runner.pipeline.dispatch import DEFAULT_MAX_QUEUE_BYTES, EngineQueue
from splight_runner.pipeline.exporter import SplightLogExporter, convert


class SplightLogRecordProcessor(EngineQueue, LogRecordProcessor):
    """Bounded queue, one dispatcher thread and up to N sender threads (see :class:`EngineQueue`)."""

    def __init__(
        self,
        exporter: SplightLogExporter,
        *,
        max_queue_size: int | None = None,
        schedule_delay_millis: int | None = None,
        max_export_batch_size: int | None = None,
        export_timeout_millis: int | None = None,
        drops: DropCounter | None = None,
        settings: config.DeliverySettings | None = None,
        export_concurrency: int | None = None,
    ) -> None:
        EngineQueue.__init__(
            self,
            exporter,
            max_queue_size=max_queue_size,
            schedule_delay_millis=schedule_delay_millis,
            max_export_batch_size=max_export_batch_size,
            export_timeout_millis=export_timeout_millis,
            drops=drops,
            settings=settings,
            export_concurrency=export_concurrency,
        )

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:  # type: ignore[override]
        item = convert(log_record, self._delivery)
        if item is not None:
            self.put(item)


__all__ = ["DEFAULT_MAX_QUEUE_BYTES", "SplightLogRecordProcessor"]
