"""The processor the distro pairs with the ``splight`` exporter.

:class:`SplightLogRecordProcessor` is used instead of the SDK's
``BatchLogRecordProcessor``, because the Engine path needs what that one does
not give: drop-newest with an exact count and a WARNING record about it,
retries that go on while the queue has room, a flush that waits for in-flight
retries instead of exporting beside them (no duplicates), and a deadline that a
dead Engine cannot exceed at exit.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from typing import Any

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk._logs import LogRecordProcessor, ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from splight_runner import settings as config
from splight_runner.diagnostics import say
from splight_runner.engine import records
from splight_runner.pipeline.accounting import DropCounter, FlushMarker
from splight_runner.pipeline.deadline import ExitDeadline, as_deadline
from splight_runner.pipeline.exporter import DeliveryStats, SplightLogExporter

#: Default bound of the queue in (estimated) bytes.
DEFAULT_MAX_QUEUE_BYTES = 64 << 20


def _size(readable: ReadableLogRecord) -> int:
    """A cheap estimate of what a queued record holds: its text and a fixed overhead."""
    record = readable.log_record
    body = record.body
    size = 256 + (len(body) if isinstance(body, str) else 64)
    attributes = record.attributes
    if attributes:
        trace = attributes.get(records.ATTR_EXCEPTION_STACKTRACE)
        if isinstance(trace, str):
            size += len(trace)
    return size


class SplightLogRecordProcessor(LogRecordProcessor):
    """Bounded queue + one worker thread: the only path that ever calls the exporter."""

    max_queue_bytes = DEFAULT_MAX_QUEUE_BYTES

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
    ) -> None:
        """Each value not given comes from ``settings``, else from the environment (read once)."""
        self._exporter = exporter
        given = (max_queue_size, schedule_delay_millis, max_export_batch_size, export_timeout_millis)
        delivery = settings if settings is not None or all(given) else config.delivery_settings()
        self.max_queue_size = max_queue_size or delivery.max_queue_size
        self._delay = (schedule_delay_millis or delivery.schedule_delay_ms) / 1000
        self._batch_size = min(max_export_batch_size or delivery.max_export_batch_size, self.max_queue_size)
        self.export_timeout = (export_timeout_millis or delivery.export_timeout_ms) / 1000
        self._queue: deque[Any] = deque()
        self._wake = threading.Event()
        #: Drain without waiting for the schedule delay (a full batch, a status, a flush).
        self._urgent = False
        self._exit_deadline: ExitDeadline | None = None
        self._shutdown = False
        #: Shared with the capture intake (see component.configuration) so one report covers both queues.
        self.drops = drops if drops is not None else DropCounter()
        self._template: ReadableLogRecord | None = None
        self._in_flight: list[ReadWriteLogRecord] = []
        #: Estimated bytes held in the queue: 20,000 records of 40 KB must not mean 800 MB.
        self._queued_bytes = 0
        self._pid = os.getpid()
        self._start()

    @property
    def stats(self) -> DeliveryStats:
        return self._exporter.stats

    def undelivered_records(self) -> int:
        """Log records that did not reach the Engine: dropped, abandoned, or still queued or in flight."""
        waiting = [*self._in_flight, *self._queue]
        queued = sum(
            1
            for item in waiting
            if not isinstance(item, FlushMarker) and item.log_record.event_name != records.STATUS_EVENT_NAME
        )
        return self.drops.total + self.stats.abandoned + queued

    def undelivered_statuses(self) -> list[str]:
        """Statuses that did not reach the Engine, in order (abandoned, then still queued)."""
        queued = [
            str(item.log_record.body)
            for item in [*self._in_flight, *self._queue]
            if not isinstance(item, FlushMarker) and item.log_record.event_name == records.STATUS_EVENT_NAME
        ]
        return [*self.stats.abandoned_statuses, *queued]

    def engine_is_failing(self) -> bool:
        """Whether the exporter is retrying through an outage (then a full queue drops, counted)."""
        return self._exporter.failing()

    def has_room(self) -> bool:
        """Whether a record emitted now would be queued (the supervisor's feeder waits for this)."""
        return len(self._queue) < self.max_queue_size and self._queued_bytes < self.max_queue_bytes

    def _start(self) -> None:
        self._worker = threading.Thread(target=self._run, name="splight-runner-export", daemon=True)
        self._worker.start()

    def after_fork_in_child(self) -> None:
        self._pid = os.getpid()
        self._queue.clear()
        self._queued_bytes = 0
        self._wake = threading.Event()
        self._exit_deadline = None
        self.drops.reset()
        self._exporter.after_fork()
        self._start()

    # --- LogRecordProcessor ----------------------------------------------------
    def on_emit(self, log_record: ReadWriteLogRecord) -> None:  # type: ignore[override]
        if self._shutdown:
            self.drops.add()  # made after the exit flush (e.g. in a late atexit hook): counted, not sent
            return
        queue = self._queue
        is_status = log_record.log_record.event_name == records.STATUS_EVENT_NAME
        # A status is never dropped for room: a handful per life, and the final one is the last word.
        if not is_status and (len(queue) >= self.max_queue_size or self._queued_bytes >= self.max_queue_bytes):
            self.drops.add()
            return
        self._queued_bytes += _size(log_record)
        queue.append(log_record)
        if is_status or len(queue) >= self._batch_size:
            self._urgent = True
            self._wake.set()
        elif len(queue) == 1:
            self._wake.set()  # the first record of a batch starts its schedule delay

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait until everything queued before this call has been handled by the worker."""
        return self._flush(timeout_millis / 1000)

    def shutdown(self, timeout_millis: int | None = None) -> None:
        """Final flush: retries stop at the deadline, then the worker ends."""
        if self._shutdown:
            return
        timeout = self.export_timeout if timeout_millis is None else timeout_millis / 1000
        self.final_flush(time.monotonic() + timeout)
        self._shutdown = True
        self._urgent = True
        self._wake.set()
        self._exporter.shutdown()

    def final_flush(self, give_up_at: float | ExitDeadline) -> bool:
        """Flush with a hard deadline: what is not accepted by then is counted as abandoned.

        An :class:`ExitDeadline` may be brought forward during the flush (a stop
        signal): the wait ends at the new time, and so does the Engine call in flight.
        """
        deadline = as_deadline(give_up_at)
        if self._exit_deadline is None:
            self._exit_deadline = deadline
            deadline.on_change(self._deadline_moved)
        else:
            self._exit_deadline.bring_forward(deadline.at)
        if not self._worker.is_alive():
            return not self._queue
        return self._exit_deadline.wait(self._flush_marker().done.wait)

    def _deadline_moved(self, at: float) -> None:
        self._exporter.cut_calls_at(at)
        self._exporter.hurry()

    def _flush(self, timeout: float) -> bool:
        if not self._worker.is_alive():
            return not self._queue
        return self._flush_marker().done.wait(timeout)

    def _flush_marker(self) -> FlushMarker:
        marker = FlushMarker()
        self._queue.append(marker)
        self._urgent = True
        self._wake.set()
        self._exporter.hurry()
        return marker

    # --- worker ------------------------------------------------------------------
    def _run(self) -> None:
        while not self._shutdown:
            # A timer only while a batch waits: with nothing queued this thread sleeps until a record
            # arrives, then the batch waits its schedule delay (a full batch, a status or a flush cut it
            # short). An idle component costs this thread nothing.
            if not self._queue and not self._urgent:
                self._wake.wait()
                self._wake.clear()  # that wake was the batch's first record: its delay starts now
            if not self._urgent:
                self._wake.wait(self._delay)
            self._wake.clear()
            self._urgent = False
            self._drain()

    def _drain(self) -> None:
        queue = self._queue
        while queue:
            # In flight from the first record taken off the queue: an exit report read meanwhile
            # finds every record in exactly one of the two.
            batch: list[ReadWriteLogRecord] = []
            self._in_flight = batch
            marker: FlushMarker | None = None
            while queue and len(batch) < self._batch_size:
                item = queue[0]
                if isinstance(item, FlushMarker):
                    queue.popleft()
                    marker = item
                    break
                batch.append(item)
                queue.popleft()
                self._queued_bytes -= _size(item)
            if batch:
                self._template = batch[-1]
                try:
                    delivered = self._exporter.deliver(batch, self._deadline)
                except Exception as error:  # a bug must not kill the only worker
                    say(f"export failed ({type(error).__name__}: {error})")
                    delivered = False
                finally:
                    self._in_flight = []
                if delivered and self.drops:
                    self._report_drops()
            else:
                self._in_flight = []
            if marker is not None:
                marker.done.set()

    def _deadline(self) -> float | None:
        deadline = self._exit_deadline
        return None if deadline is None else deadline.at

    def _report_drops(self) -> None:
        """One WARNING record, first in line, once the Engine accepts records again."""
        template = self._template
        report = self.drops.take_report(self.max_queue_size)
        if template is None or report is None:
            return
        count, message = report
        now = time.time_ns()
        warning = LogRecord(
            timestamp=now,
            observed_timestamp=now,
            severity_text="WARN",
            severity_number=SeverityNumber.WARN,
            body=message,
            attributes={records.ATTR_DROPPED_COUNT: count},
        )
        report_record = ReadWriteLogRecord(
            log_record=warning,
            resource=template.resource,
            instrumentation_scope=InstrumentationScope("splight_runner"),
        )
        self._queued_bytes += _size(report_record)
        self._queue.appendleft(report_record)
        self._urgent = True
        self._wake.set()
