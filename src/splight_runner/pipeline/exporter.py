"""The ``splight`` logs exporter.

:class:`SplightLogExporter` is a standard SDK ``LogRecordExporter`` (entry point
``opentelemetry_logs_exporter: splight``): it turns SDK records into the
Engine's two calls through :mod:`splight_runner.engine.records` and
:mod:`splight_runner.engine.client`. The processor that gives it its delivery
guarantees is :class:`splight_runner.pipeline.processor.SplightLogRecordProcessor`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from splight_runner import settings as config
from splight_runner.diagnostics import say
from splight_runner.engine import records
from splight_runner.engine.client import MAX_BYTES_PER_POST, MAX_RECORDS_PER_POST, EngineClient, pack_records
from splight_runner.engine.retry import Deadline, Retrier


@dataclass
class DeliveryStats:
    """What happened to the records this process handed to the exporter."""

    sent: int = 0
    statuses_sent: int = 0
    rejected: int = 0
    #: Log records given up on at the deadline.
    abandoned: int = 0
    #: Statuses given up on at the deadline, in order.
    abandoned_statuses: list[str] = field(default_factory=list)


class SplightLogExporter(LogRecordExporter):
    """Sends log records to ``logs/write`` and health events to ``update-status``."""

    def __init__(
        self,
        *,
        engine: config.EngineSettings | None = None,
        process_id: str | None = None,
        sender_type: str | None = None,
        timeout: float | None = None,
    ) -> None:
        engine = engine or config.engine_settings()
        self._timeout = timeout if timeout is not None else config.delivery_settings().export_timeout
        self._client = EngineClient(engine, timeout=min(self._timeout, 10.0))
        self._process_id = process_id or config.process_id()
        self._sender_type = sender_type or config.process_type()
        self._last_status: dict[str, str] = {}
        self._retrier = Retrier(say)
        self.stats = DeliveryStats()

    # --- the SDK interface ---------------------------------------------------
    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        """Deliver ``batch``, retrying transient failures for at most the export timeout."""
        give_up_at = time.monotonic() + self._timeout
        delivered = self.deliver(batch, lambda: give_up_at)
        return LogRecordExportResult.SUCCESS if delivered else LogRecordExportResult.FAILURE

    def shutdown(self) -> None:
        self._client.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    # --- used by SplightLogRecordProcessor ------------------------------------
    def hurry(self) -> None:
        """Cut the current backoff sleep short (a flush or exit is waiting)."""
        self._retrier.hurry()

    def failing(self) -> bool:
        """True while calls fail and are being retried (an outage), until one succeeds again."""
        return self._retrier.failing

    def after_fork(self) -> None:
        self._client.after_fork()
        self._retrier.reset()
        self.stats = DeliveryStats()

    def deliver(self, batch: Sequence[ReadableLogRecord], deadline: Deadline) -> bool:
        """Send ``batch`` in order: runs of logs as logs/write POSTs, each status as its own call.

        Returns False when the deadline cut retries short; everything not sent is
        then counted as abandoned (records and statuses apart), exactly once.
        """
        items: list[tuple[str, Any]] = []
        for readable in batch:
            kind, payload = records.from_sdk(readable, self._process_id, self._sender_type)
            if kind == "status" and not records.sends_status(self._sender_of(readable)):
                continue
            if kind != "skip":
                items.append((kind, payload))
        logs: list[dict[str, Any]] = []
        for index, (kind, payload) in enumerate(items):
            if kind == "log":
                logs.append(payload)
                continue
            if logs and not self._send_logs(logs, deadline):
                self._abandon(items[index:])
                return False
            logs = []
            if not self._send_status(*payload, deadline=deadline):
                self._abandon(items[index + 1 :])
                return False
        return not logs or self._send_logs(logs, deadline)

    def _sender_of(self, readable: ReadableLogRecord) -> str:
        resource = readable.resource.attributes if readable.resource is not None else {}
        return str(resource.get(records.RESOURCE_PROCESS_TYPE) or self._sender_type)

    def _abandon(self, items: Sequence[tuple[str, Any]]) -> None:
        for kind, payload in items:
            if kind == "log":
                self.stats.abandoned += 1
            else:
                self.stats.abandoned_statuses.append(payload[1])

    def _send_logs(self, records_: list[dict[str, Any]], deadline: Deadline) -> bool:
        bodies = pack_records(records_, max_records=MAX_RECORDS_PER_POST, max_bytes=MAX_BYTES_PER_POST)
        for index, (body, count) in enumerate(bodies):
            outcome = self._retrier.call(
                lambda body=body: self._client.write_logs(body), deadline=deadline, what=f"{count} log records"
            )
            if outcome is None:
                self.stats.abandoned += sum(n for _, n in bodies[index:])
                return False
            if outcome:
                self.stats.sent += count
            else:
                self.stats.rejected += count
        return True

    def _send_status(self, process_id: str, status: str, *, deadline: Deadline) -> bool:
        if self._last_status.get(process_id) == status:
            return True
        outcome = self._retrier.call(
            lambda: self._client.update_status(process_id, status), deadline=deadline, what=f"status {status}"
        )
        if outcome is None:
            self.stats.abandoned_statuses.append(status)
            return False
        if outcome:
            self._last_status[process_id] = status
            self.stats.statuses_sent += 1
        else:
            self.stats.rejected += 1
        return True
