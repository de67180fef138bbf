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

from splight_runner.pipeline.dispatch import EngineQueue
from splight_runner.pipeline.exporter import convert


class SplightLogRecordProcessor(EngineQueue, LogRecordProcessor):
    """Bounded queue, one dispatcher thread and up to N sender threads (see :class:`EngineQueue`).

    Made with the ``splight`` exporter as its delivery: ``SplightLogRecordProcessor(exporter, ...)``.
    """

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:  # type: ignore[override]
        item = convert(log_record, self._delivery)
        if item is not None:
            self.put(item)


__all__ = ["SplightLogRecordProcessor"]
