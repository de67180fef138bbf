"""``otlp`` is OTLP over HTTP/protobuf for logs and spans unless a protocol variable says ``grpc``.

Upstream's Python SDK picks gRPC for ``otlp`` when no protocol is set; the default install has no
grpcio, so the runner's pipeline and the SDK set-up under ``opentelemetry-instrument`` must both
use HTTP then. Asking for gRPC without the extra under ``opentelemetry-instrument`` is one line
per signal that asked for it, and the Splight Engine still gets every record: one signal's
missing exporter would otherwise fail upstream's set-up for all of them. (``run-component``'s
refusal, exit 2, is tested from a plain install in tests/test_install.py.)
"""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from otlp_sink import OtlpSink
from splight_runner.engine.records import STATUS_EVENT_NAME
from support import engine_env, instrument, run_component, write_component

pytestmark = pytest.mark.component_facing


APP = """
import logging
from opentelemetry import trace
logging.basicConfig(level=logging.INFO)
with trace.get_tracer("test").start_as_current_span("work"):
    logging.getLogger("app").warning("inside span")
print("component ran", flush=True)
"""

#: The test environment has the gRPC exporters only when someone installed the extra into it.
GRPC_INSTALLED = any(ep.name == "otlp_proto_grpc" for ep in entry_points(group="opentelemetry_logs_exporter"))
needs_no_grpc_extra = pytest.mark.skipif(
    GRPC_INSTALLED,
    reason="the grpc extra is installed here (make install does not install it; a fresh .venv has none)",
)


@pytest.mark.parametrize("via", ["run-component", "opentelemetry-instrument"])
def test_otlp_without_a_protocol_is_http_for_logs_and_spans(dev_engine, tmp_path, via):
    """The sink speaks only OTLP/HTTP: with gRPC chosen, nothing would reach it."""
    main = write_component(tmp_path, APP)
    with OtlpSink() as sink:
        env = engine_env(
            dev_engine, COMPONENT_ID="C1", OTEL_LOGS_EXPORTER="splight,otlp", OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint
        )
        assert not any(name.endswith("_PROTOCOL") for name in env if name.startswith("OTEL_"))
        done = run_component(main, env) if via == "run-component" else instrument(main, env)
        assert done.returncode == 0, done.stderr
        assert "component ran" in done.stdout
        assert sink.wait_for(lambda s: s.spans and any(log.event_name == STATUS_EVENT_NAME for log in s.logs))
        assert [log.body for log in sink.logs if log.event_name != STATUS_EVENT_NAME] == ["inside span"]
        assert [name for name, _, _ in sink.spans] == ["work"]
        assert dev_engine.wait_for(lambda e: e.statuses)
        assert [r["message"] for r in dev_engine.records] == ["inside span"]


@needs_no_grpc_extra
def test_opentelemetry_instrument_says_grpc_needs_the_extra_and_still_ships_to_the_engine(dev_engine, tmp_path):
    main = write_component(tmp_path, APP)
    env = engine_env(
        dev_engine,
        COMPONENT_ID="C1",
        OTEL_LOGS_EXPORTER="splight,otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
    )
    done = instrument(main, env)
    assert done.returncode == 0, done.stderr
    assert "component ran" in done.stdout
    said = [line for line in done.stderr.splitlines() if "splight-runner[grpc]" in line]
    # One line per signal that asked for gRPC: logs (otlp) and spans (otlp, the endpoint being set).
    assert len(said) == 2, done.stderr
    assert all("OTEL_EXPORTER_OTLP_PROTOCOL=grpc" in line and "left out" in line for line in said)
    assert "Traceback" not in done.stderr
    assert dev_engine.wait_for(lambda e: e.statuses)
    assert [r["message"] for r in dev_engine.records] == ["inside span"]
