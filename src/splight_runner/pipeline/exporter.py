"""The ``splight`` logs exporter.

:class:`SplightLogExporter` is a standard SDK ``LogRecordExporter`` (entry point
``opentelemetry_logs_exporter: splight``): it turns SDK records into the
Engine's two calls through :mod:`splight_runner.engine.records` and
:mod:`splight_runner.engine.client`. The processor that gives it its delivery
guarantees is :class:`splight_runner.pipeline.processor.SplightLogRecordProcessor`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from splight_runner import environment as names
from splight_runner import settings as config
from splight_runner.diagnostics import say
from splight_runner.engine import records
from splight_runner.engine.client import EngineClient, pack_records
from splight_runner.engine.retry import Deadline, Retrier


@dataclass
class DeliveryStats:
    """What happened to the records this process handed to the exporter."""

    sent: int = 0
    statuses_sent: int = 0
    rejected: int = 0
    abandoned: int = 0


def write_state(path: str | None, status: str) -> None:
    """Tell the supervisor which status the Engine accepted last (atomic replace)."""
    if not path:
        return
    try:
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(status)
        os.replace(tmp, path)
    except OSError:
        pass


class SplightLogExporter(LogRecordExporter):
    """Sends log records to ``logs/write`` and health events to ``update-status``."""

    def __init__(
        self,
        *,
        engine: config.EngineSettings | None = None,
        process_id: str | None = None,
        sender_type: str | None = None,
        timeout: float | None = None,
        state_file: str | None = None,
    ) -> None:
        engine = engine or config.engine_settings()
        self._timeout = timeout if timeout is not None else config.delivery_settings().export_timeout
        self._client = EngineClient(engine, timeout=min(self._timeout, 10.0))
        self._process_id = process_id or config.process_id()
        self._sender_type = sender_type or config.process_type()
        self._state_file = state_file if state_file is not None else os.environ.get(names.SPLIGHT_RUNNER_STATE_FILE)
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

    def after_fork(self) -> None:
        self._client.after_fork()
        self._retrier.reset()
        self.stats = DeliveryStats()

    def deliver(self, batch: Sequence[ReadableLogRecord], deadline: Deadline) -> bool:
        """Send ``batch`` in order: runs of logs as logs/write POSTs, each status as its own call.

        Returns False when the deadline cut retries short (the rest is counted as abandoned).
        """
        logs: list[dict[str, Any]] = []
        for index, readable in enumerate(batch):
            kind, payload = records.from_sdk(readable, self._process_id, self._sender_type)
            if kind == "log":
                logs.append(payload)
            elif kind == "status":
                if logs and not self._send_logs(logs, deadline):
                    self._abandon(len(batch) - index)
                    return False
                logs = []
                if not self._send_status(*payload, deadline=deadline):
                    self._abandon(len(batch) - index - 1)
                    return False
        return not logs or self._send_logs(logs, deadline)

    def _abandon(self, count: int) -> None:
        if count > 0:
            self.stats.abandoned += count

    def _send_logs(self, logs: list[dict[str, Any]], deadline: Deadline) -> bool:
        for body, count in pack_records(logs):
            outcome = self._retrier.call(
                lambda body=body: self._client.write_logs(body), deadline=deadline, what=f"{count} log records"
            )
            if outcome is None:
                self.stats.abandoned += count
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
            self.stats.abandoned += 1
            return False
        if outcome:
            self._last_status[process_id] = status
            self.stats.statuses_sent += 1
            write_state(self._state_file, status)
        else:
            self.stats.rejected += 1
        return True
