"""Property: any record the stdlib can build becomes exactly one valid Engine record and one valid OTLP record.

The whole translation, as it runs under ``run-component``: the capture hook's
:func:`splight_runner.bootstrap.splight_capture.capture.flattener` on the component's side,
the channel's format (``wire``), :class:`splight_runner.pipeline.flat.FlatEmitter`
into a real SDK ``LoggerProvider`` on the supervisor's side, then
:func:`splight_runner.engine.records.from_sdk` and
:func:`splight_runner.engine.client.pack_records` for the Engine, and
OpenTelemetry's own OTLP protobuf encoder for a collector. Records are made
the way ``Logger._log`` makes them (``makeRecord`` with ``extra``), with text
that includes lone surrogates, extras that are nested, cyclic, keyed by
non-strings or unprintable, and exceptions whose ``__str__`` raises.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs  # noqa: E402
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest  # noqa: E402
from opentelemetry.sdk._logs import LoggerProvider  # noqa: E402
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from tests.strategies import Sulky, log_records  # noqa: E402

from splight_runner.bootstrap.splight_capture import wire  # noqa: E402
from splight_runner.bootstrap.splight_capture.capture import flattener  # noqa: E402
from splight_runner.dev_engine.server import validate_logs_payload  # noqa: E402
from splight_runner.engine import records  # noqa: E402
from splight_runner.engine.client import pack_records  # noqa: E402
from splight_runner.pipeline.flat import FlatEmitter  # noqa: E402


@pytest.fixture(scope="module")
def pipeline() -> tuple[FlatEmitter, InMemoryLogRecordExporter]:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(
        resource=Resource.create({records.RESOURCE_COMPONENT_ID: "C1", records.RESOURCE_PROCESS_TYPE: "component"}),
        shutdown_on_exit=False,
    )
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    return FlatEmitter(provider, code_attributes=True), exporter


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(record=log_records())
def test_any_record_becomes_one_engine_record_and_one_otlp_record(pipeline, record):
    emitter, exporter = pipeline
    exporter.clear()
    flat = flattener()(record)

    [item] = wire.decode(wire.encode([flat]))  # what crosses the channel to the supervisor
    emitter.emit(item)
    [readable] = exporter.get_finished_logs()

    kind, engine_record = records.from_sdk(readable, "C1", "component")
    assert kind == "log"
    [(body, count)] = pack_records([engine_record])
    assert count == 1
    payload = json.loads(body.decode("utf-8"))  # valid UTF-8, valid JSON
    [sent] = validate_logs_payload(payload)  # what the Engine accepts
    assert sent["name"] == _replaced(record.name)

    request = encode_logs([readable])
    decoded = ExportLogsServiceRequest.FromString(request.SerializeToString())
    [scope_logs] = decoded.resource_logs[0].scope_logs
    assert len(scope_logs.log_records) == 1


def _replaced(text: str) -> str:
    return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text)


def test_the_strategies_reach_the_hard_cases() -> None:
    """A guard for the generator itself: lone surrogates, cycles and broken exceptions are all drawn."""
    seen: set[str] = set()

    @settings(max_examples=200, deadline=None)
    @given(record=log_records())
    def probe(record: logging.LogRecord) -> None:
        if any("\ud800" <= ch <= "\udfff" for ch in _message_of(record)):
            seen.add("surrogate")
        if record.exc_info and isinstance(record.exc_info[1], Sulky):
            seen.add("sulky")
        if any(isinstance(v, (dict, list)) for v in record.__dict__.values()):
            seen.add("container")
        assume(True)

    probe()
    assert seen == {"surrogate", "sulky", "container"}


def _message_of(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:
        return ""


def _translate(pipeline: Any, record: logging.LogRecord) -> tuple[dict[str, Any], Any]:
    emitter, exporter = pipeline
    exporter.clear()
    emitter.emit(wire.decode(wire.encode([flattener()(record)]))[0])
    [readable] = exporter.get_finished_logs()
    kind, engine_record = records.from_sdk(readable, "C1", "component")
    assert kind == "log"
    [(body, _)] = pack_records([engine_record])
    [sent] = validate_logs_payload(json.loads(body.decode("utf-8")))
    return sent, readable


def _raw_text_record() -> logging.LogRecord:
    """A surrogate where the hook copies text as it is: logger name, path, function, stack, formatted message."""
    name = "reports.\udcff"
    record = logging.Logger(name).makeRecord(name, 30, "/data/\udcff.py", 1, "cannot parse %s", ("x\udcff",), None)
    record.funcName = "parse_\udcff"
    record.stack_info = "Stack (most recent call last):\n  in \udcff"
    logging.Formatter().format(record)  # as a handler would: sets record.message
    return record


def test_surrogates_the_hook_passes_on_as_they_are_still_make_a_valid_engine_record(pipeline):
    sent, _ = _translate(pipeline, _raw_text_record())
    assert sent["name"] == "reports.\ufffd"
    assert sent["message"] == "cannot parse x\ufffd"
    assert sent["filename"] == "\ufffd.py"


def test_surrogates_the_hook_passes_on_as_they_are_make_a_valid_otlp_record(pipeline):
    _, readable = _translate(pipeline, _raw_text_record())
    encode_logs([readable]).SerializeToString()
