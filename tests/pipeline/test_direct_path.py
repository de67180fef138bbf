"""The runner's direct path makes the Engine records the SDK path makes, byte for byte.

When ``splight`` is the runner's only destination, flat items become Engine
records through :class:`splight_runner.pipeline.flat.EngineEmitter`, with no
SDK record in between; with an OpenTelemetry exporter configured too they go
through :class:`~splight_runner.pipeline.flat.FlatEmitter`, a real SDK
``LoggerProvider`` and the ``splight`` exporter's conversion. For any record the
standard library can build (the same generator as the translation properties),
any OTel Logs API record of plain values, and every status, both paths give the
same ``logs/write`` body, with and without ``historical`` fields.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from tests.strategies import TEXT, log_records, usual_records

from splight_runner.bootstrap.splight_capture import wire
from splight_runner.bootstrap.splight_capture.capture import flattener
from splight_runner.engine import records
from splight_runner.engine.client import pack_records
from splight_runner.engine.records import as_mapping
from splight_runner.pipeline.delivery import EngineDelivery
from splight_runner.pipeline.exporter import convert
from splight_runner.pipeline.flat import EngineEmitter, FlatEmitter, severity_number
from splight_runner.settings import EngineSettings


class Collected:
    """Where the direct path puts what it makes (the Engine queue's ``put``), with the delivery that counts."""

    def __init__(self, delivery: EngineDelivery) -> None:
        self.delivery = delivery
        self.items: list[Any] = []

    def put(self, item: Any) -> None:
        self.items.append(item)


class BothPaths:
    """One flat item through each path; what the Engine would receive from each."""

    def __init__(self) -> None:
        engine = EngineSettings(host="http://127.0.0.1:9", api_version="v3", access_id="a", secret_key="s")
        self.delivery = EngineDelivery(engine=engine, process_id="C1", sender_type="component", timeout=1.0)
        self.memory = InMemoryLogRecordExporter()
        provider = LoggerProvider(
            resource=Resource.create({records.RESOURCE_COMPONENT_ID: "C1", records.RESOURCE_PROCESS_TYPE: "component"}),
            shutdown_on_exit=False,
        )
        provider.add_log_record_processor(SimpleLogRecordProcessor(self.memory))
        self.sdk = FlatEmitter(provider, code_attributes=True)
        self.collected = Collected(self.delivery)
        self.direct = EngineEmitter(self.collected, process_id="C1", sender_type="component")

    def sdk_items(self, emit: Any) -> list[Any]:
        self.memory.clear()
        emit(self.sdk)
        return [convert(readable, self.delivery) for readable in self.memory.get_finished_logs()]

    def direct_items(self, emit: Any) -> list[Any]:
        self.collected.items.clear()
        emit(self.direct)
        return list(self.collected.items)

    def assert_same(self, emit: Any) -> list[Any]:
        sdk, direct = self.sdk_items(emit), self.direct_items(emit)
        assert len(sdk) == len(direct) == 1
        if isinstance(sdk[0], records.StatusUpdate) or isinstance(direct[0], records.StatusUpdate):
            assert sdk[0] == direct[0]
        else:
            assert _body(sdk[0]) == _body(direct[0])
        return direct


def _body(record: dict[str, Any] | bytes) -> bytes:
    [(body, count)] = pack_records([record])
    assert count == 1
    return body


@pytest.fixture(scope="module")
def paths() -> BothPaths:
    return BothPaths()


@pytest.fixture(params=["all", "historical"])
def fields(request: pytest.FixtureRequest) -> Iterator[str]:
    records.send_historical_fields_only(request.param == "historical")
    try:
        yield request.param
    finally:
        records.send_historical_fields_only(False)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(record=log_records())
def test_any_stdlib_record_gives_the_same_engine_record_on_both_paths(paths, fields, record):
    [item] = wire.decode(wire.encode([flattener()(record)]))  # what crosses the channel
    paths.assert_same(lambda emitter: emitter.emit(item))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    record=usual_records(),
    trace_id=st.one_of(st.just(0), st.integers(1, 2**128 - 1)),
    span_id=st.one_of(st.just(0), st.integers(1, 2**64 - 1)),
)
def test_a_usual_record_is_made_as_its_json_and_reads_the_same_on_both_paths(paths, fields, record, trace_id, span_id):
    """The direct path writes the usual record's JSON itself (``records.RecordJSON``): the same bytes."""
    item = flattener()(record)
    item = (*item[:12], trace_id, span_id if trace_id else 0, 1 if trace_id else 0)
    [item] = wire.decode(wire.encode([item]))
    [made] = paths.assert_same(lambda emitter: emitter.emit(item))
    extras = item[9]  # the tags as they crossed the channel (capture repairs some text on the way)
    assert (type(made) is bytes) == _json_takes(extras["tags"] if extras else None)


def _json_takes(value: Any) -> bool:
    """Whether the Engine's encoder takes ``value`` as it is (no NaN, no lone surrogate)."""
    try:
        records.json_encoder().encode(value).encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        return False
    return True


@pytest.mark.parametrize(
    "change",
    [
        {"msg": "caf\u00e9"},  # not ASCII
        {"pathname": "/srv/\u00e9t\u00e9.py"},
        {"msg": "x" * 70_000},  # long enough that a POST's limit may have to cut it
        {"tags": {"x": float("nan")}},  # tags JSON cannot take as they are
        {"other": 1},  # an extra besides tags
        {"stack_info": "Stack (most recent call last):"},
    ],
)
def test_any_other_record_takes_the_dict_and_reads_the_same(paths, change):
    record = logging.LogRecord("app", logging.INFO, "/x/main.py", 3, "m", None, None)
    record.__dict__.update(change)
    [made] = paths.assert_same(lambda emitter: emitter.emit(flattener()(record)))
    assert type(made) is dict


#: Attribute values the OTel Logs API takes (AnyValue): what the component's channel carries.
PLAIN = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), TEXT)
OTEL_ATTRIBUTES = st.dictionaries(
    st.one_of(st.sampled_from(sorted(records.ATTRIBUTES_READ)), st.text(max_size=10)),
    st.one_of(PLAIN, st.lists(st.one_of(st.booleans(), st.text(max_size=5)), max_size=3)),
    max_size=5,
)


@st.composite
def otel_items(draw: Any) -> tuple[Any, ...]:
    """An OTEL flat item as ``splight_capture.otel`` makes it from a Logs API call."""
    trace_id = draw(st.one_of(st.just(0), st.integers(1, 2**128 - 1)))
    return (
        wire.OTEL,
        draw(st.text(max_size=10)),
        draw(st.one_of(st.just(0), st.integers(1, 2**62))),
        draw(st.integers(1, 2**62)),
        draw(st.integers(0, 24)),
        draw(st.one_of(st.none(), st.sampled_from(["INFO", "warn", "Error", "FATAL2", "x"]))),
        draw(st.one_of(PLAIN, st.dictionaries(st.text(max_size=5), PLAIN, max_size=3))),
        draw(OTEL_ATTRIBUTES),
        draw(st.one_of(st.none(), st.just(records.STATUS_EVENT_NAME), st.text(max_size=10))),
        trace_id,
        draw(st.integers(1, 2**64 - 1)) if trace_id else 0,
        1 if trace_id else 0,
    )


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(item=otel_items())
def test_any_otel_logs_api_record_gives_the_same_engine_item_on_both_paths(paths, fields, item):
    paths.assert_same(lambda emitter: emitter.emit(item))


@pytest.mark.parametrize("state", ["Running", "Stopped", "Failed", "Finished"])
def test_every_status_gives_the_same_update_on_both_paths(paths, fields, state):
    [update] = paths.assert_same(lambda emitter: emitter.emit((wire.STATUS, state, 1_700_000_000_000_000_000)))
    assert update == records.StatusUpdate("C1", records.platform_status(state))


def test_the_drop_report_reads_the_same_on_both_paths_but_for_its_time(paths, fields):
    sdk = paths.sdk_items(lambda emitter: emitter.emit_drop_report(7, 1, 2, "20000 records"))
    direct = paths.direct_items(lambda emitter: emitter.emit_drop_report(7, 1, 2, "20000 records"))
    assert [dict(r, timestamp=None) for r in sdk] == [dict(r, timestamp=None) for r in direct]
    assert direct[0]["loglevel"] == "WARNING" and "dropped 7 log records" in direct[0]["message"]


@pytest.mark.parametrize("key", sorted(records.ATTRIBUTES_READ))
def test_an_extra_named_like_an_attribute_the_engine_reads_gives_the_same_record(paths, fields, key):
    """``extra={"code.file.path": [...]}`` and the like: the Engine reads these, the SDK cleans them."""
    for value in (["a", {"": 1, "b": (2,)}], "text", 7, {"k": ["v"]}):
        record = logging.LogRecord("app", logging.INFO, "/x/main.py", 3, "m", None, None)
        record.__dict__[key] = value
        paths.assert_same(lambda emitter, record=record: emitter.emit(flattener()(record)))


def test_a_record_at_every_level_number_reads_the_same_level(paths, fields):
    for level in range(-5, 70):
        record = logging.LogRecord("app", level, "/x/main.py", 3, "m", None, None)
        [item] = paths.assert_same(lambda emitter, record=record: emitter.emit(flattener()(record)))
        assert as_mapping(item)["loglevel"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


def test_the_direct_path_imports_no_opentelemetry():
    """Building the runner's pipeline with the Engine its only destination loads no OpenTelemetry module."""
    code = """
import sys
from splight_runner import settings
from splight_runner.pipeline import logs
from splight_runner.supervisor.launch import PipelineSpec, build_pipeline
spec = PipelineSpec(
    exporter_names=("splight",), process_id="C1", process_type="component", code_attributes=False,
    engine=settings.EngineSettings(host="http://127.0.0.1:9", api_version="v3", access_id="a", secret_key="s"),
    delivery=settings.delivery_settings(),
)
pipeline = build_pipeline(spec)
pipeline.emit(("status", "Running", 1))
loaded = sorted(name for name in sys.modules if name.split(".")[0] == "opentelemetry")
print(type(pipeline.splight).__name__, loaded, "_json" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # Nor the JSON accelerator (a shared library): the first usual record loads it, a silent run never.
    assert result.stdout.strip() == "EngineQueue [] False"


def test_the_severity_rule_is_the_logging_instrumentations():
    """Both paths take a level's severity from ``flat.severity_number``: it must be upstream's ``std_to_otel``."""
    from opentelemetry.instrumentation.log_utils import std_to_otel

    assert [severity_number(level) for level in range(-20, 201)] == [
        std_to_otel(level).value for level in range(-20, 201)
    ]
