"""EngineDelivery against a real dev-engine: every record sent, rejected or left, exactly once.

Records are real SDK records, made by :class:`splight_runner.pipeline.flat.FlatEmitter`
on a real ``LoggerProvider`` and made into Engine items by the ``splight`` exporter's
:func:`~splight_runner.pipeline.exporter.convert`, as the SDK path makes them.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from splight_runner import diagnostics
from splight_runner.bootstrap.splight_capture.capture import flattener
from splight_runner.dev_engine.server import DevEngine
from splight_runner.engine import records
from splight_runner.pipeline import delivery as delivery_module
from splight_runner.pipeline.exporter import SplightLogExporter, convert
from splight_runner.pipeline.flat import FlatEmitter
from splight_runner.settings import EngineSettings

pytestmark = pytest.mark.usefixtures("direct_to_the_engine")


def sdk_records(*items: str) -> list[Any]:
    """SDK records for ``items``: ``"status:<S>"`` is a health transition, anything else a log message."""
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(
        resource=Resource.create({records.RESOURCE_COMPONENT_ID: "C1", records.RESOURCE_PROCESS_TYPE: "component"}),
        shutdown_on_exit=False,
    )
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    emitter = FlatEmitter(provider)
    flatten = flattener()
    for item in items:
        if item.startswith("status:"):
            emitter.emit_status(item.partition(":")[2])
        else:
            emitter.emit(flatten(logging.LogRecord("app", logging.INFO, "main.py", 1, item, None, None)))
    return list(memory.get_finished_logs())


def items(exporter: SplightLogExporter, *names: str) -> list[Any]:
    """The Engine items of :func:`sdk_records`, as the Splight processor queues them."""
    return [convert(readable, exporter) for readable in sdk_records(*names)]


def _text(item: Any) -> str:
    return item["message"] if isinstance(item, dict) else item.status


def exporter_for(engine: DevEngine, secret: str = "dev-secret") -> SplightLogExporter:
    settings = EngineSettings(host=engine.url, api_version="v3", access_id="dev-access", secret_key=secret)
    return SplightLogExporter(engine=settings, process_id="C1", sender_type="component", timeout=2.0)


def test_at_the_deadline_the_in_flight_batch_is_cut_to_what_was_not_delivered_and_held(
    dev_engine: DevEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery_module, "HOLD_AT_DEADLINE", 1.0)
    dev_engine.fail_next(100, 503, endpoint="status")
    exporter = exporter_for(dev_engine)
    batch = items(exporter, "a0", "a1", "a2", "status:Running", "b0", "b1")
    give_up_at = time.monotonic() + 0.6
    outcome: list[bool] = []
    worker = threading.Thread(target=lambda: outcome.append(exporter.deliver(batch, lambda: give_up_at)))
    worker.start()
    time.sleep(1.0)  # past the deadline, within the hold: what an exit report reads now
    held = [_text(item) for item in batch]
    stats_then = (exporter.stats.sent, exporter.stats.abandoned, list(exporter.stats.abandoned_statuses))
    worker.join(5)

    assert [r["message"] for r in dev_engine.records] == ["a0", "a1", "a2"]
    assert held == ["Running", "b0", "b1"]  # the processor counts these as in flight; nothing else does
    assert stats_then == (3, 0, [])
    assert outcome == [False]
    assert batch == []  # after the hold, counted by the exporter instead, once
    assert (exporter.stats.sent, exporter.stats.abandoned, exporter.stats.abandoned_statuses) == (3, 2, ["Running"])


def test_without_hold_what_is_left_is_abandoned_at_once(dev_engine: DevEngine) -> None:
    exporter = exporter_for(dev_engine)
    batch = items(exporter, "a0", "status:Running", "b0")
    started = time.monotonic()
    assert exporter.deliver(batch, lambda: started - 1, hold=False) is False
    assert time.monotonic() - started < 0.5
    assert dev_engine.requests == []  # no call once the deadline has passed
    assert (exporter.stats.abandoned, exporter.stats.abandoned_statuses) == (2, ["Running"])


def test_413_split_counts_each_record_once(dev_engine: DevEngine) -> None:
    dev_engine.fail_next(4, 413, endpoint="logs")  # [9] -> [4] -> [2] -> [1]: r0 alone is refused
    exporter = exporter_for(dev_engine)
    batch = items(exporter, *(f"r{i}" for i in range(9)))
    assert exporter.deliver(batch, lambda: None) is True
    assert [r["message"] for r in dev_engine.records] == [f"r{i}" for i in range(1, 9)]
    assert (exporter.stats.sent, exporter.stats.rejected, exporter.stats.abandoned) == (8, 1, 0)


@pytest.mark.parametrize("form", ["dict", "json"])
def test_a_record_refused_alone_is_named_by_its_logger_and_message_in_either_form(
    dev_engine: DevEngine, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    monkeypatch.setattr(diagnostics, "_limited", {})  # the first refusal of the run is said in full
    dev_engine.fail_next(1, 413, endpoint="logs")
    exporter = exporter_for(dev_engine)
    record: Any = items(exporter, "the refused one")[0]
    if form == "json":  # as the direct path queues a usual record
        record = records.RecordJSON("C1", "component")("app", "the refused one", "INFO", "main.py", None, 0, 0, 0)

    assert exporter.deliver([record], lambda: None) is True

    assert (exporter.stats.sent, exporter.stats.rejected) == (0, 1)
    assert "refused a log record of logger 'app': 'the refused one' on its own" in capsys.readouterr().err


def test_rejected_statuses_are_not_counted_as_records(dev_engine: DevEngine, capsys: pytest.CaptureFixture) -> None:
    exporter = exporter_for(dev_engine, secret="wrong")
    for _ in range(3):
        assert exporter.deliver(items(exporter, "x", "status:Running", "y"), lambda: None) is True
    exporter.shutdown()
    assert (exporter.stats.rejected, exporter.stats.rejected_statuses) == (6, ["Running"] * 3)
    lines = [line for line in capsys.readouterr().err.splitlines() if "rejected" in line or "refused" in line]
    assert len(lines) <= 2, lines
    assert "6 log records" in lines[-1] and "wrong" not in " ".join(lines)
