"""The distro: opentelemetry-instrument, OTEL_* conventions, spans, and OTLP fan-out."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from otlp_sink import OtlpSink
from splight_runner.engine.records import STATUS_EVENT_NAME
from support import ACCESS_ID, BIN, RUNNER, SECRET_KEY, engine_env, instrument, run_component, write_component

pytestmark = pytest.mark.component_facing


APP = """
import logging
from opentelemetry import trace
logging.basicConfig(level=logging.INFO)
log = logging.getLogger("app")
log.info("outside span")
with trace.get_tracer("test").start_as_current_span("work") as span:
    log.warning("inside span")
    ctx = span.get_span_context()
    print(f"span {ctx.trace_id:032x} {ctx.span_id:016x}", flush=True)
hidden = logging.Logger("splight_lib.style")
hidden.propagate = False
hidden.error("unregistered", extra={"tags": "RUNTIME"})
"""


def _span_ids(stdout: str) -> tuple[str, str]:
    line = next(line for line in stdout.splitlines() if line.startswith("span "))
    _, trace_id, span_id = line.split()
    return trace_id, span_id


def test_opentelemetry_instrument_ships_like_run_component(dev_engine, tmp_path):
    main = write_component(tmp_path, APP)
    done = instrument(main, engine_env(dev_engine, COMPONENT_ID="C1"))
    assert done.returncode == 0, done.stderr
    assert dev_engine.wait_for(lambda e: e.statuses)
    via_instrument = dev_engine.records
    statuses = dev_engine.statuses
    dev_engine.clear()

    run = run_component(main, engine_env(dev_engine))
    assert run.returncode == 0, run.stderr
    assert dev_engine.wait_for(lambda e: e.statuses)

    def comparable(records):
        return [{k: v for k, v in r.items() if k not in ("timestamp", "trace_id", "span_id")} for r in records]

    assert comparable(via_instrument) == comparable(dev_engine.records)
    assert [r["message"] for r in via_instrument] == ["outside span", "inside span", "unregistered"]
    assert via_instrument[2]["tags"] == "RUNTIME"
    assert statuses == dev_engine.statuses == [("C1", "Succeeded")]


def test_otel_python_distro_selects_splight(dev_engine, tmp_path):
    main = write_component(tmp_path, APP)
    done = instrument(main, engine_env(dev_engine, COMPONENT_ID="C1", OTEL_PYTHON_DISTRO="splight"))
    assert done.returncode == 0, done.stderr
    assert dev_engine.wait_for(lambda e: len(e.records) >= 3)


def test_records_inside_a_span_carry_its_trace_and_span_id(dev_engine, tmp_path):
    main = write_component(tmp_path, APP)
    run = run_component(main, engine_env(dev_engine))
    assert run.returncode == 0, run.stderr
    assert dev_engine.wait_for(lambda e: len(e.records) >= 3)
    trace_id, span_id = _span_ids(run.stdout)
    outside, inside, _ = dev_engine.records
    assert (inside["trace_id"], inside["span_id"]) == (trace_id, span_id)
    assert "trace_id" not in outside and "span_id" not in outside


@pytest.mark.parametrize("via", ["run-component", "opentelemetry-instrument"])
def test_splight_and_otlp_fan_out_gets_the_same_records_without_credentials(dev_engine, tmp_path, via):
    main = write_component(tmp_path, APP)
    with OtlpSink() as sink:
        env = engine_env(
            dev_engine,
            COMPONENT_ID="C1",
            OTEL_LOGS_EXPORTER="splight,otlp",
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint,
            OTEL_SERVICE_NAME="pump-controller",
            OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test,team=grid",
        )
        done = run_component(main, env) if via == "run-component" else instrument(main, env)
        assert done.returncode == 0, done.stderr
        assert dev_engine.wait_for(lambda e: e.statuses)
        # The final status is the pipeline's last record, to every exporter: OTLP sees it in both ways.
        expected_health = [("Succeeded", "Succeeded")]
        assert sink.wait_for(lambda s: len(s.logs) >= 3 + len(expected_health) and s.spans)

        engine_messages = [r["message"] for r in dev_engine.records]
        otlp_logs = [log for log in sink.logs if log.event_name != STATUS_EVENT_NAME]
        assert [log.body for log in otlp_logs] == engine_messages == ["outside span", "inside span", "unregistered"]

        resource = sink.logs[0].resource
        assert resource["splight.component.id"] == "C1"
        assert resource["splight.process.type"] == "component"
        assert resource["service.name"] == "pump-controller"
        assert resource["deployment.environment"] == "test" and resource["team"] == "grid"

        health = [log for log in sink.logs if log.event_name == STATUS_EVENT_NAME]
        assert [(h.body, h.attributes["splight.component.status"]) for h in health] == expected_health

        trace_id, span_id = _span_ids(done.stdout)
        inside = otlp_logs[1]
        assert (inside.trace_id, inside.span_id) == (trace_id, span_id)
        assert ("work", trace_id, span_id) in sink.spans
        assert inside.attributes["code.file.path"].endswith("main.py")
        assert otlp_logs[2].attributes["splight.tags"] == "RUNTIME"

        for headers in sink.headers:
            flat = " ".join(f"{k}: {v}" for k, v in headers.items())
            assert SECRET_KEY not in flat and ACCESS_ID not in flat
            assert "Splight" not in headers.get("Authorization", "")


@pytest.mark.parametrize(
    "extra",
    [{}, {"OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION": "true"}, {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "logging"}],
    ids=["default", "logging-handler-requested", "logging-instrumentor-disabled"],
)
def test_exactly_one_capture_path(dev_engine, tmp_path, extra):
    main = write_component(
        tmp_path,
        """
        import logging
        logging.basicConfig(level=logging.INFO)
        for i in range(50):
            logging.getLogger("app").info("record %d", i)
        """,
    )
    done = instrument(main, engine_env(dev_engine, COMPONENT_ID="C1", **extra))
    assert done.returncode == 0, done.stderr
    assert dev_engine.wait_for(lambda e: e.statuses)
    assert [r["message"] for r in dev_engine.records] == [f"record {i}" for i in range(50)]


def test_traces_go_nowhere_by_default_and_to_otlp_when_an_endpoint_is_set(dev_engine, tmp_path):
    main = write_component(tmp_path, APP)
    with OtlpSink() as sink:
        env = engine_env(dev_engine, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
        assert run_component(main, env).returncode == 0
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.endpoint
        assert run_component(main, env).returncode == 0
        assert sink.wait_for(lambda s: s.spans)
        assert [name for name, _, _ in sink.spans] == ["work"]  # one run's span, not two
        assert sink.logs == []  # logs still go only where OTEL_LOGS_EXPORTER says


def test_run_command_with_console_exporter(tmp_path):
    main = write_component(tmp_path, APP)
    env = {"PATH": os.environ["PATH"], "OTEL_LOGS_EXPORTER": "console", "COMPONENT_ID": "C1"}
    done = subprocess.run([*RUNNER, "run", "--", str(main)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert '"body": "unregistered"' in done.stdout
    assert '"splight.component.id": "C1"' in done.stdout


def test_without_credentials_instrument_mode_says_one_line_and_the_component_runs(tmp_path):
    main = write_component(tmp_path, "print('component ran')\n")
    env = {"PATH": os.environ["PATH"], "COMPONENT_ID": "C1", "SPLIGHT_RUNNER_SECRETS_DIR": "/nonexistent"}
    done = instrument(main, env)
    assert done.returncode == 0
    assert done.stdout == "component ran\n"
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "SPLIGHT_ACCESS_ID" in lines[0], done.stderr


def test_log_correlation_still_injects_trace_ids_into_the_components_format(dev_engine, tmp_path):
    main = write_component(
        tmp_path,
        """
        import logging
        from opentelemetry import trace
        with trace.get_tracer("t").start_as_current_span("work"):
            record = logging.getLogger("app").makeRecord("app", logging.INFO, "f", 1, "m", (), None)
            print("trace id injected:", getattr(record, "otelTraceID", "0") != "0")
        """,
    )
    done = instrument(main, engine_env(dev_engine, COMPONENT_ID="C1", OTEL_PYTHON_LOG_CORRELATION="true"))
    assert done.returncode == 0, done.stderr
    assert "trace id injected: True" in done.stdout
    assert dev_engine.wait_for(lambda e: e.statuses)


SETUP_REPORT = """
import json, logging, sys
from opentelemetry import _logs, trace
from opentelemetry.trace import ProxyTracerProvider
logger_provider = _logs.get_logger_provider()
attributes = dict(logger_provider._resource.attributes)
attributes.pop("service.instance.id", None)  # random per process
processors = logger_provider._multi_log_record_processor._log_record_processors
print(json.dumps({
    "resource": attributes,
    "tracer_provider": type(trace.get_tracer_provider()).__module__,
    "logger_provider": type(logger_provider).__module__,
    "processors": [type(p).__name__ for p in processors],
    "upstream_setup": "opentelemetry.sdk._configuration" in sys.modules,
    "metrics_sdk": "opentelemetry.sdk.metrics" in sys.modules,
}), flush=True)
with trace.get_tracer("t").start_as_current_span("s"):
    logging.getLogger("app").warning("one record")
"""


@pytest.mark.parametrize("runner", ["opentelemetry-instrument"])
def test_default_configuration_builds_what_upstreams_setup_builds(dev_engine, tmp_path, runner):
    """The distro's short set-up (default configuration) is indistinguishable from upstream's.

    Only where the pipeline runs in the component: under run-component the component
    builds no log pipeline at all (the supervisor hosts it).
    """
    main = write_component(tmp_path, SETUP_REPORT)

    def run(**extra: str) -> tuple[dict, list[dict]]:
        dev_engine.clear()
        env = engine_env(dev_engine, OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test", **extra)
        if runner == "run-component":
            done = run_component(main, env)
        else:
            done = instrument(main, {**env, "COMPONENT_ID": "C1"})
        assert done.returncode == 0, done.stderr
        assert dev_engine.wait_for(lambda e: e.statuses)
        report = json.loads(done.stdout.splitlines()[0])
        return report, dev_engine.records

    short, short_records = run()
    # Any upstream set-up variable (here the default id generator, named explicitly) takes upstream's path.
    upstream, upstream_records = run(OTEL_PYTHON_ID_GENERATOR="random")
    assert short.pop("upstream_setup") is False and short.pop("metrics_sdk") is False
    assert upstream.pop("upstream_setup") is True and upstream.pop("metrics_sdk") is True
    assert short == upstream
    assert short["resource"]["deployment.environment"] == "test"
    assert short["resource"]["splight.component.id"] == "C1"
    assert short["tracer_provider"] == "opentelemetry.sdk.trace"
    assert short["processors"] == ["SplightLogRecordProcessor"]

    def comparable(records):
        return [{k: v for k, v in r.items() if k not in ("timestamp", "trace_id", "span_id")} for r in records]

    assert comparable(short_records) == comparable(upstream_records) != []
    assert all(len(r.get("trace_id", "")) == 32 for r in short_records + upstream_records)


def _instrument_with_args(main: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}
    return subprocess.run(
        [str(BIN / "opentelemetry-instrument"), "python", main.name, *args],
        cwd=main.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


ONE_RECORD = """
import logging, os
log = logging.getLogger("app")
log.setLevel(logging.INFO)
log.info("one record")  # INFO: Python's last-resort handler prints nothing
print(os.environ.get("COMPONENT_ID"), flush=True)
"""


@pytest.mark.parametrize("args", [["--component-id", "X7"], ["--component-id=X7"]], ids=["separate", "equals"])
def test_instrument_reads_the_process_id_from_the_components_own_argument(dev_engine, tmp_path, args):
    main = write_component(tmp_path, ONE_RECORD)
    done = _instrument_with_args(main, engine_env(dev_engine), *args, "--other", "value")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout == "X7\n"  # as under run-component, the id is COMPONENT_ID for the component's children too
    assert dev_engine.wait_for(lambda e: e.statuses)
    assert [(r["id"], r["message"]) for r in dev_engine.records] == [("X7", "one record")]
    assert dev_engine.statuses == [("X7", "Succeeded")]


def test_instrument_the_variable_wins_over_the_argument(dev_engine, tmp_path):
    main = write_component(tmp_path, ONE_RECORD)
    done = _instrument_with_args(main, engine_env(dev_engine, COMPONENT_ID="FROM-ENV"), "--component-id=X7")
    assert done.returncode == 0, done.stderr
    assert dev_engine.wait_for(lambda e: e.statuses)
    assert [r["id"] for r in dev_engine.records] == ["FROM-ENV"]


def test_instrument_a_malformed_argument_id_is_one_line_and_the_component_runs(dev_engine, tmp_path):
    main = write_component(tmp_path, ONE_RECORD)
    done = _instrument_with_args(main, engine_env(dev_engine), "--component-id=a/b")
    assert done.returncode == 0
    assert done.stdout == "None\n"
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "--component-id: 'a/b' is not a valid id" in lines[0], done.stderr


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"OTEL_LOGS_EXPORTER": "splight,bogus"}, "OTEL_LOGS_EXPORTER: no log exporter named 'bogus'"),
        ({"OTEL_TRACES_EXPORTER": "zipkin-nowhere"}, "OTEL_TRACES_EXPORTER: no span exporter named 'zipkin-nowhere'"),
        ({"OTEL_BLRP_MAX_QUEUE_SIZE": "lots"}, "OTEL_BLRP_MAX_QUEUE_SIZE: 'lots' is not an integer"),
    ],
    ids=["unknown-log-exporter", "unknown-span-exporter", "malformed-queue-size"],
)
def test_instrument_a_configuration_mistake_is_one_line_and_the_rest_still_ships(dev_engine, tmp_path, extra, named):
    main = write_component(tmp_path, ONE_RECORD)
    done = instrument(main, engine_env(dev_engine, COMPONENT_ID="C1", **extra))
    assert done.returncode == 0
    assert done.stdout == "C1\n"
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and named in lines[0] and "Traceback" not in done.stderr, done.stderr
    assert dev_engine.wait_for(lambda e: e.statuses)
    assert [r["message"] for r in dev_engine.records] == ["one record"]


OWN_HANDLER = """
import logging, sys
from opentelemetry import trace
handler = logging.StreamHandler(sys.stdout)
handler.setFormatter(logging.Formatter("%(levelname)s|%(name)s|%(message)s"))
log = logging.getLogger("app")
log.addHandler(handler)
log.setLevel(logging.INFO)
log.info("before any span")
with trace.get_tracer("t").start_as_current_span("work"):
    log.warning("inside a span")
    record = log.makeRecord("app", logging.INFO, "f", 1, "m", (), None)
print("root handlers:", logging.getLogger().handlers, "root level:", logging.getLogger().level, flush=True)
sys.stderr.write(f"injected: {getattr(record, 'otelTraceID', '0') != '0'}\\n")
"""


@pytest.mark.parametrize("via", ["run-component", "opentelemetry-instrument"])
def test_log_correlation_changes_neither_the_components_handlers_nor_its_output(dev_engine, tmp_path, via):
    main = write_component(tmp_path, OWN_HANDLER)

    def run(**extra: str) -> tuple[str, str]:
        dev_engine.clear()
        env = engine_env(dev_engine, **extra)
        done = run_component(main, env) if via == "run-component" else instrument(main, {**env, "COMPONENT_ID": "C1"})
        assert done.returncode == 0, done.stderr
        assert dev_engine.wait_for(lambda e: e.statuses)
        assert [r["message"] for r in dev_engine.records] == ["before any span", "inside a span"]
        return done.stdout, done.stderr

    plain_out, plain_err = run()
    correlated_out, correlated_err = run(OTEL_PYTHON_LOG_CORRELATION="true")
    assert correlated_out == plain_out
    assert plain_out.startswith("INFO|app|before any span\nWARNING|app|inside a span\nroot handlers: [] root level: 30")
    # The trace ids are still put on every record, for a format that names them.
    assert plain_err == "injected: False\n"
    assert correlated_err == "injected: True\n"


SPAN_RECORDS = """
import logging
from opentelemetry import trace
log = logging.getLogger("app")
log.warning("outside")
with trace.get_tracer("t").start_as_current_span("work"):
    log.warning("inside", extra={"tags": {"a": 1}})
"""


@pytest.mark.parametrize("via", ["run-component", "opentelemetry-instrument"])
def test_historical_record_fields_sends_only_the_eight_fields(dev_engine, tmp_path, via):
    main = write_component(tmp_path, SPAN_RECORDS)
    env = engine_env(dev_engine, SPLIGHT_RUNNER_RECORD_FIELDS="historical")
    done = run_component(main, env) if via == "run-component" else instrument(main, {**env, "COMPONENT_ID": "C1"})
    assert done.returncode == 0, done.stderr
    assert dev_engine.wait_for(lambda e: e.statuses)
    historical = ["sender_type", "id", "name", "message", "loglevel", "filename", "traceback", "tags"]
    assert [list(r) for r in dev_engine.records] == [historical, historical]
    assert dev_engine.records[1]["tags"] == {"a": 1}
    assert dev_engine.statuses == [("C1", "Succeeded")]


def test_instrument_a_forked_child_ships_its_own_records_quietly(dev_engine, tmp_path):
    main = write_component(
        tmp_path,
        """
        import logging, os
        log = logging.getLogger("app")
        log.warning("parent before")
        pid = os.fork()
        if pid == 0:
            log.warning("child")
            os._exit(0)
        os.waitpid(pid, 0)
        log.warning("parent after")
        """,
    )
    done = instrument(main, engine_env(dev_engine, COMPONENT_ID="C1"))
    assert done.returncode == 0, done.stderr
    assert dev_engine.wait_for(lambda e: e.statuses)
    assert sorted(r["message"] for r in dev_engine.records) == ["child", "parent after", "parent before"]
    # The component's own lines (logging's last-resort handler), and nothing of the runner: no traceback.
    # (Python 3.12+ adds its own DeprecationWarning about fork() in a process with threads.)
    lines = done.stderr.splitlines()
    assert [line for line in lines if line in ("parent before", "child", "parent after")] == [
        "parent before",
        "child",
        "parent after",
    ]
    assert not [line for line in lines if line.startswith(("splight-runner:", "Traceback", "Exception ignored"))]
    assert "Error" not in done.stderr, done.stderr
