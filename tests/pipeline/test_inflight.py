"""Several Engine calls in flight (SPLIGHT_RUNNER_EXPORT_CONCURRENCY), with order kept where a user sees it.

The real processor and exporter against a real dev-engine over 127.0.0.1, with
a per-call delay standing in for a distant Engine. Several calls in flight show
at the dev-engine as several keep-alive connections used (one call at a time
reuses one connection).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource

from splight_runner import settings as config
from splight_runner.bootstrap.splight_capture.capture import flattener
from splight_runner.dev_engine.server import DevEngine
from splight_runner.engine import records
from splight_runner.pipeline.exporter import SplightLogExporter
from splight_runner.pipeline.flat import FlatEmitter
from splight_runner.pipeline.processor import SplightLogRecordProcessor
from splight_runner.settings import ConfigError, EngineSettings

pytestmark = pytest.mark.usefixtures("direct_to_the_engine")


@pytest.fixture
def historical() -> Iterator[None]:
    """Engine records without ``timestamp`` (SPLIGHT_RUNNER_RECORD_FIELDS=historical) for one test."""
    records.send_historical_fields_only(True)
    try:
        yield
    finally:
        records.send_historical_fields_only(False)


class Pipeline:
    """A provider feeding the real Splight processor (the SDK path; its Engine queue is the direct path's too)."""

    def __init__(self, engine: DevEngine, *, concurrency: int, delay_ms: int = 50, timeout: float = 10.0) -> None:
        settings = EngineSettings(host=engine.url, api_version="v3", access_id="dev-access", secret_key="dev-secret")
        exporter = SplightLogExporter(engine=settings, process_id="C1", sender_type="component", timeout=timeout)
        self.processor = SplightLogRecordProcessor(
            exporter,
            settings=config.DeliverySettings(
                max_queue_size=50_000,
                schedule_delay_ms=delay_ms,
                max_export_batch_size=1000,
                export_timeout_ms=int(timeout * 1000),
            ),
            export_concurrency=concurrency,
        )
        self.provider = LoggerProvider(
            resource=Resource.create({records.RESOURCE_COMPONENT_ID: "C1", records.RESOURCE_PROCESS_TYPE: "component"}),
            shutdown_on_exit=False,
        )
        self.provider.add_log_record_processor(self.processor)
        self.emitter = FlatEmitter(self.provider)
        self._flatten = flattener()

    def log(self, *messages: str) -> None:
        for message in messages:
            self.emitter.emit(self._flatten(logging.LogRecord("app", logging.INFO, "main.py", 1, message, None, None)))

    def status(self, status: str) -> None:
        self.emitter.emit_status(status)


def _messages(count: int, prefix: str = "r") -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


def _engine_calls(engine: DevEngine) -> list[tuple[str, Any]]:
    """Every accepted call in the order the dev-engine accepted it: ("logs", [messages]) or ("status", S)."""
    calls: list[tuple[str, Any]] = []
    for request in engine.requests:
        if not request.accepted:
            continue
        if request.path.endswith("/logs/write/"):
            calls.append(("logs", [r["message"] for r in json.loads(request.body)["records"]]))
        elif request.path.endswith("/update-status/"):
            calls.append(("status", request.body.decode().partition("=")[2]))
    return calls


def _log_connections(engine: DevEngine) -> set[int]:
    return {r.connection for r in engine.requests if r.path.endswith("/logs/write/")}


def test_several_calls_are_in_flight_against_a_slow_engine(dev_engine: DevEngine) -> None:
    dev_engine.set_delay(0.3)
    pipeline = Pipeline(dev_engine, concurrency=4)
    started = time.monotonic()
    pipeline.log(*_messages(4000))
    assert pipeline.processor.force_flush(20_000)
    took = time.monotonic() - started
    assert sorted(r["message"] for r in dev_engine.records) == sorted(_messages(4000))
    assert len(_log_connections(dev_engine)) >= 2
    # Four calls of 300 ms one after the other take 1.2 s at least; four in flight, about one call's time.
    assert took < 1.0, took


def test_a_status_reaches_the_engine_after_every_record_logged_before_it(dev_engine: DevEngine) -> None:
    # The first record batches are answered 503 with Retry-After: they are accepted about 0.6 s late.
    # A status sent beside them, instead of after them, would reach the Engine first.
    dev_engine.set_delay(0.05)
    dev_engine.fail_next(2, 503, retry_after="0.6", endpoint="logs")
    pipeline = Pipeline(dev_engine, concurrency=4)
    before, after = _messages(3500, "before "), _messages(1500, "after ")
    pipeline.log(*before)
    pipeline.status("Running")
    pipeline.log(*after)
    assert pipeline.processor.force_flush(20_000)

    calls = _engine_calls(dev_engine)
    at = calls.index(("status", "Running"))
    sent_before = [m for kind, body in calls[:at] if kind == "logs" for m in body]
    sent_after = [m for kind, body in calls[at + 1 :] if kind == "logs" for m in body]
    assert sorted(sent_before) == sorted(before)
    assert sorted(sent_after) == sorted(after)
    assert len(_log_connections(dev_engine)) >= 2  # the records before it were several calls in flight


def test_statuses_keep_their_order_and_the_final_status_comes_after_every_record(dev_engine: DevEngine) -> None:
    dev_engine.set_delay(0.1)
    pipeline = Pipeline(dev_engine, concurrency=8)
    pipeline.status("Running")
    pipeline.log(*_messages(2500, "a"))
    pipeline.status("Stopped")
    pipeline.log(*_messages(4500, "b"))
    pipeline.status("Succeeded")  # the final status, as LogPipeline.end appends it
    assert pipeline.processor.final_flush(time.monotonic() + 10)

    calls = _engine_calls(dev_engine)
    statuses = [(index, body) for index, (kind, body) in enumerate(calls) if kind == "status"]
    assert [status for _, status in statuses] == ["Running", "Stopped", "Succeeded"]
    assert statuses[-1][0] == len(calls) - 1  # the final status is the last call
    between = [m for kind, body in calls[statuses[0][0] : statuses[1][0]] if kind == "logs" for m in body]
    assert sorted(between) == sorted(_messages(2500, "a"))
    assert len(dev_engine.records) == 7000
    assert len(_log_connections(dev_engine)) >= 2


def test_without_timestamps_the_engine_receives_records_in_order(dev_engine: DevEngine, historical: None) -> None:
    dev_engine.set_delay(0.02)
    pipeline = Pipeline(dev_engine, concurrency=8)
    for chunk in range(6):  # several batches queued at once: eight senders would race
        pipeline.log(*(f"r{chunk * 700 + i}" for i in range(700)))
    assert pipeline.processor.force_flush(20_000)
    assert [r["message"] for r in dev_engine.records] == _messages(4200)
    assert all("timestamp" not in r for r in dev_engine.records)
    assert len(_log_connections(dev_engine)) == 1  # one call in flight: one keep-alive connection


def test_accounting_is_exact_when_the_engine_is_down_with_several_calls_in_flight(dev_engine: DevEngine) -> None:
    # Every call answered 503 after 200 ms: the first batches are all in flight before the first answer,
    # then retried until the exit deadline. (A 503, unlike a cut call, tells the runner nothing was stored.)
    dev_engine.set_delay(0.2)
    dev_engine.fail_next(100_000, 503)
    pipeline = Pipeline(dev_engine, concurrency=4)
    pipeline.log(*_messages(9000))
    pipeline.status("Succeeded")
    time.sleep(0.1)  # the dispatcher hands the first batches out
    assert pipeline.processor.final_flush(time.monotonic() + 1.0) is False
    time.sleep(0.3)  # the senders cut at the deadline now hold what they had: the exit report reads
    processor = pipeline.processor

    assert dev_engine.records == [] and dev_engine.statuses == []
    assert processor.undelivered_records() == 9000
    assert processor.undelivered_statuses() == ["Succeeded"]
    failed = [r for r in dev_engine.requests if r.path.endswith("/logs/write/")]
    assert len({r.connection for r in failed}) >= 2  # several calls were in flight and failing
    # Once the Engine is seen failing, one call is in flight: the others wait in the queue.
    assert len(failed) <= 4 + 10, len(failed)


def _voluntary_switches(thread: threading.Thread) -> int:
    """Times the thread went to sleep (Linux /proc): each timed wait that expires is one more."""
    with open(f"/proc/self/task/{thread.native_id}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches line")


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="reads /proc/self/task (Linux)")
def test_the_worker_never_wakes_up_while_no_record_is_pending(dev_engine: DevEngine) -> None:
    pipeline = Pipeline(dev_engine, concurrency=4, delay_ms=10)  # a 10 ms timer would wake it 100 times a second
    pipeline.log("one record, then nothing")
    assert pipeline.processor.force_flush(5000)
    worker = pipeline.processor._worker
    time.sleep(0.1)
    before = _voluntary_switches(worker)
    time.sleep(1.0)
    assert _voluntary_switches(worker) - before <= 1
    # ...and a record logged after the idle time still goes out within the schedule delay.
    pipeline.log("after the idle time")
    assert dev_engine.wait_for(lambda e: len(e.records) == 2, timeout=2)


def test_the_export_concurrency_setting() -> None:
    assert config.delivery_settings({}).export_concurrency == config.DEFAULT_EXPORT_CONCURRENCY == 4
    env = {"SPLIGHT_RUNNER_EXPORT_CONCURRENCY": " 8 "}
    assert config.delivery_settings(env).export_concurrency == 8
    for value, message in (
        ("many", "SPLIGHT_RUNNER_EXPORT_CONCURRENCY: 'many' is not an integer"),
        ("0", "SPLIGHT_RUNNER_EXPORT_CONCURRENCY: 0 is below the minimum 1"),
    ):
        with pytest.raises(ConfigError) as raised:
            config.delivery_settings({"SPLIGHT_RUNNER_EXPORT_CONCURRENCY": value})
        assert str(raised.value) == message
