"""The collector configs in collector-config/ validate and do what README.md says.

Runs the real splight-otelcol binary (built from collector-config/manifest.yaml) on
loopback ports only, with a tiny stdlib OTLP/HTTP sink standing in for
`splight-runner gateway`.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from agent_env import agent_env as collector_env
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from support import free_port

COLLECTOR_CONFIG = Path(__file__).resolve().parents[2] / "collector-config"
# The first test that needs the binary may build it (minutes, cold): see conftest.py.
BUILD_TIMEOUT_SECONDS = int(os.environ.get("SPLIGHT_COLLECTOR_BUILD_TIMEOUT", "2700"))
pytestmark = [pytest.mark.collector, pytest.mark.timeout(BUILD_TIMEOUT_SECONDS + 300)]

AGENT = COLLECTOR_CONFIG / "agent.yaml"
CONFIGS = sorted(p for p in COLLECTOR_CONFIG.glob("*.yaml") if p.name != "manifest.yaml")
COMPONENT_ID = "5a1e3c1e-0000-4000-8000-00000000c0de"
T0 = 1704067200  # 2024-01-01T00:00:00Z


# --------------------------------------------------------------------------- helpers


class Sink:
    """Stand-in for `splight-runner gateway`: an OTLP/HTTP logs receiver on loopback."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[ExportLogsServiceRequest] = []
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding", "").lower() == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/logs":
                    self.send_response(404)
                    self.end_headers()
                    return
                request = ExportLogsServiceRequest()
                request.ParseFromString(body)
                with sink.lock:
                    sink.requests.append(request)
                payload = ExportLogsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def records(self) -> list[tuple[dict, str, LogRecord]]:
        """(resource attributes, scope name, record) for every record received so far."""
        out = []
        with self.lock:
            for request in self.requests:
                for rl in request.resource_logs:
                    resource = attrs(rl.resource.attributes)
                    for sl in rl.scope_logs:
                        for record in sl.log_records:
                            out.append((resource, sl.scope.name, record))
        return out

    def wait_for(self, count: int, timeout: float, collector=None) -> list[tuple[dict, str, LogRecord]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.records()
            if len(got) >= count:
                time.sleep(0.5)  # let stragglers (duplicates) show up too
                return self.records()
            time.sleep(0.1)
        log = collector.log_text() if collector else ""
        got = [(r, s, body_of(rec)) for r, s, rec in self.records()]
        raise AssertionError(f"sink got {len(got)} of {count} records: {got}\ncollector log:\n{log}")


def value_of(v: AnyValue):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [value_of(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return attrs(v.kvlist_value.values)
    return getattr(v, kind)


def attrs(kvs) -> dict:
    return {kv.key: value_of(kv.value) for kv in kvs}


def body_of(record: LogRecord):
    return value_of(record.body)


def splight_formatter() -> logging.Formatter:
    """splight-lib's SplightFormatter if installed, else the same format written out."""
    try:
        from splight_lib.logging.logging import SplightFormatter

        return SplightFormatter()
    except ImportError:

        class Equivalent(logging.Formatter):
            # Same as splight_lib.logging.logging.SplightFormatter (splight-lib 5.x).
            def format(self, record: logging.LogRecord) -> str:
                fmt = "%(levelname)s | %(asctime)s | %(filename)s:%(lineno)d | %(message)s"
                if getattr(record, "tags", None) is not None:
                    fmt += " | %(tags)s"
                formatter = logging.Formatter(fmt=fmt, datefmt="%Y-%m-%dT%H:%M:%SZ")
                formatter.converter = time.gmtime
                return formatter.format(record)

        return Equivalent()


def make_record(level, msg, seconds, path, line, tags=None, exc_info=None, stack=None) -> logging.LogRecord:
    record = logging.LogRecord("component", level, path, line, msg, None, exc_info, sinfo=stack)
    record.created = T0 + seconds
    record.msecs = 0.0
    if tags is not None:
        record.tags = tags
    return record


def failing_call() -> None:
    def inner() -> None:
        raise ValueError("sensor 7 returned garbage")

    try:
        inner()
    except ValueError as exc:
        raise RuntimeError("could not read sensors") from exc


def write_component_log(path: Path) -> list[dict]:
    """Write splight-lib formatted records; return what each should become."""
    formatter = splight_formatter()
    try:
        failing_call()
    except RuntimeError:
        exc_info = sys.exc_info()
    cases = [
        dict(level=logging.INFO, msg="Component started", tags="RUNTIME", path="/app/main.py", line=12),
        dict(level=logging.WARNING, msg="read 3 | 4 values, expected 5", path="/app/reader.py", line=40),
        dict(
            level=logging.ERROR,
            msg="Failed reading sensors",
            tags="COMPONENT",
            exc_info=exc_info,
            path="/app/main.py",
            line=57,
        ),
        dict(level=logging.DEBUG, msg="debug with no tags", path="/app/util.py", line=3),
        dict(level=logging.INFO, msg="empty tags", tags="", path="/app/util.py", line=4),
        dict(level=logging.CRITICAL, msg="first line\nsecond line", tags="['HOOK', 'CACHE']", path="/a/x.py", line=9),
        dict(level=logging.ERROR, msg="unexpected stop", exc_info=exc_info, path="/app/main.py", line=99),
    ]
    lines = []
    expected = []
    for i, case in enumerate(cases):
        record = make_record(
            case["level"], case["msg"], i, case["path"], case["line"], case.get("tags"), case.get("exc_info")
        )
        text = formatter.format(record)
        lines.append(text)
        traceback = None
        if case.get("exc_info"):
            traceback = logging.Formatter().formatException(case["exc_info"])
        expected.append(
            dict(
                severity_text=logging.getLevelName(case["level"]),
                body=case["msg"],
                file=Path(case["path"]).name,
                line=case["line"],
                tags=case.get("tags") or None,
                traceback=traceback,
                time=(T0 + i) * 1_000_000_000,
            )
        )
    # Text before the first record is not a record: it is forwarded as it is.
    path.write_text(NOT_A_RECORD + "\n" + "\n".join(lines) + "\n")
    return expected


NOT_A_RECORD = "started by hand: no splight-lib format here"
SEVERITY_NUMBER = {"DEBUG": 5, "INFO": 9, "WARNING": 13, "ERROR": 17, "CRITICAL": 21}


def otlp_request(resource: dict, scope: str, body: str, attributes: dict) -> bytes:
    def kv(d: dict) -> list[KeyValue]:
        return [KeyValue(key=k, value=AnyValue(string_value=str(v))) for k, v in d.items()]

    record = LogRecord(
        time_unix_nano=T0 * 1_000_000_000,
        severity_number=9,
        severity_text="INFO",
        body=AnyValue(string_value=body),
        attributes=kv(attributes),
    )
    request = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=kv(resource)),
                scope_logs=[ScopeLogs(scope={"name": scope}, log_records=[record])],
            )
        ]
    )
    return request.SerializeToString()


def post_otlp(port: int, payload: bytes) -> int:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/logs",
        data=payload,
        headers={"Content-Type": "application/x-protobuf"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status


def agent_env(tmp_path: Path, gateway_port: int, **extra: str) -> tuple[dict[str, str], dict[str, int]]:
    return collector_env(tmp_path, gateway_port, extra.pop("COMPONENT_ID", COMPONENT_ID), **extra)


def metric_value(port: int, name: str, label: str) -> float:
    """Sum of a collector internal metric's series whose labels contain `label`."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return 0.0
    total = 0.0
    pattern = re.compile(rf"^{re.escape(name)}(?:_total)?\{{([^}}]*)\}} (\S+)$")
    for line in text.splitlines():
        match = pattern.match(line)
        if match and label in match.group(1):
            total += float(match.group(2))
    return total


# --------------------------------------------------------------------------- tests


def test_collector_config_files_exist() -> None:
    assert AGENT in CONFIGS


@pytest.mark.parametrize("config", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_validates(collector_binary: Path, config: Path, tmp_path: Path) -> None:
    env, _ = agent_env(tmp_path, gateway_port=free_port())
    result = subprocess.run(
        [str(collector_binary), "validate", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"{config.name} does not validate:\n{result.stdout}\n{result.stderr}"


def test_agent_validates_with_defaults_only(collector_binary: Path, tmp_path: Path) -> None:
    """No operator variable set at all (COMPONENT_ID neither): still a valid config."""
    result = subprocess.run(
        [str(collector_binary), "validate", "--config", str(AGENT)],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_memory_limiter_is_first_in_every_pipeline() -> None:
    text = AGENT.read_text()
    pipelines = text.split("pipelines:", 1)[1].split("telemetry:", 1)[0]
    processor_lists = re.findall(r"^\s+processors:\s*\[([^\]]*)\]", pipelines, re.M)
    assert len(processor_lists) == len(re.findall(r"^\s+receivers:", pipelines, re.M)) >= 2
    for processors in processor_lists:
        names = [p.strip() for p in processors.split(",")]
        assert names[0] == "memory_limiter", names
        assert names[-1] == "batch", names


def test_every_operator_value_is_an_env_reference() -> None:
    text = AGENT.read_text()
    for var in (
        "SPLIGHT_GATEWAY_ENDPOINT",
        "SPLIGHT_COLLECTOR_STORAGE",
        "SPLIGHT_COMPONENT_LOG",
        "SPLIGHT_FILELOG_LOGGER_NAME",
        "SPLIGHT_OTLP_GRPC_ENDPOINT",
        "SPLIGHT_OTLP_HTTP_ENDPOINT",
        "SPLIGHT_HEALTH_CHECK_ENDPOINT",
        "PROCESS_TYPE",
    ):
        assert re.search(rf"\$\{{env:{var}:-[^}}]+\}}", text), var
    assert "${env:COMPONENT_ID}" in text
    assert "max_elapsed_time: 0" in text


def test_agent_forwards_component_log_and_otlp(run_collector, tmp_path: Path) -> None:
    sink = Sink()
    try:
        expected = write_component_log(tmp_path / "components.log")
        # The file is there before the agent starts: forward it whole.
        env, ports = agent_env(tmp_path, sink.port, SPLIGHT_FILELOG_START_AT="beginning")
        collector = run_collector(AGENT, env)
        collector.wait_healthy(ports["health"])

        # Plain OTLP from a component that already says who it is: kept as it is.
        own = {"splight.component.id": "otlp-component", "splight.process.type": "agent", "service.name": "mine"}
        assert post_otlp(ports["http"], otlp_request(own, "my.logger", "from otlp", {"k": "v"})) == 200
        # ... and one that does not: the collector's COMPONENT_ID fills the gap.
        assert post_otlp(ports["http"], otlp_request({}, "other.logger", "anonymous otlp", {})) == 200
        # The OTLP/gRPC listener is up too (no gRPC client needed to see that).
        with socket.create_connection(("127.0.0.1", ports["grpc"]), timeout=5):
            pass

        received = sink.wait_for(len(expected) + 3, timeout=60, collector=collector)
    finally:
        sink.close()

    by_body = {}
    for resource, scope, record in received:
        by_body.setdefault(body_of(record), []).append((resource, scope, record))
    assert all(len(v) == 1 for v in by_body.values()), f"duplicates: {list(by_body)}"

    for want in expected:
        assert want["body"] in by_body, f"{want['body']!r} not received; got {list(by_body)}"
        resource, scope, record = by_body[want["body"]][0]
        record_attrs = attrs(record.attributes)
        assert record.severity_text == want["severity_text"]
        assert record.severity_number == SEVERITY_NUMBER[want["severity_text"]]
        assert record.time_unix_nano == want["time"]
        assert record.observed_time_unix_nano > 0
        assert record_attrs["code.file.path"] == want["file"]
        assert record_attrs["code.line.number"] == want["line"]
        assert isinstance(record_attrs["code.line.number"], int)
        assert record_attrs["splight.logger.name"] == "splight"
        assert record_attrs["log.file.name"] == "components.log"
        if want["tags"] is None:
            assert "splight.tags" not in record_attrs
        else:
            assert record_attrs["splight.tags"] == want["tags"]
        if want["traceback"] is None:
            assert "exception.stacktrace" not in record_attrs
        else:
            # The whole traceback, chained exceptions included, in this ONE record.
            assert record_attrs["exception.stacktrace"] == want["traceback"]
            assert "ValueError: sensor 7 returned garbage" in record_attrs["exception.stacktrace"]
            assert "RuntimeError: could not read sensors" in record_attrs["exception.stacktrace"]
        expected_keys = {"code.file.path", "code.line.number", "splight.logger.name", "log.file.name"}
        expected_keys |= {"splight.tags"} if want["tags"] is not None else set()
        expected_keys |= {"exception.stacktrace"} if want["traceback"] is not None else set()
        assert set(record_attrs) == expected_keys
        assert resource == {
            "splight.component.id": COMPONENT_ID,
            "splight.process.type": "component",
            "service.name": "splight-component",
        }
        assert scope == "splight"

    resource, scope, record = by_body[NOT_A_RECORD][0]
    assert record.severity_number == 0
    assert record.severity_text == ""
    assert attrs(record.attributes) == {"log.file.name": "components.log", "splight.logger.name": "splight"}
    assert resource["splight.component.id"] == COMPONENT_ID

    resource, scope, record = by_body["from otlp"][0]
    assert resource == own
    assert scope == "my.logger"
    assert attrs(record.attributes) == {"k": "v"}

    resource, scope, record = by_body["anonymous otlp"][0]
    assert resource == {
        "splight.component.id": COMPONENT_ID,
        "splight.process.type": "component",
        "service.name": "splight-component",
    }
    assert scope == "other.logger"


def test_agent_appends_and_uses_env_names(run_collector, tmp_path: Path) -> None:
    """Records appended while running are picked up; PROCESS_TYPE and the logger name come from env."""
    sink = Sink()
    try:
        log = tmp_path / "components.log"
        log.write_text("")
        env, ports = agent_env(
            tmp_path, sink.port, PROCESS_TYPE="agent", SPLIGHT_FILELOG_LOGGER_NAME="splight-dev", COMPONENT_ID="12345"
        )
        collector = run_collector(AGENT, env)
        collector.wait_healthy(ports["health"])
        time.sleep(1.5)  # past the receiver's first look at the files (start_at end)
        formatter = splight_formatter()
        with log.open("a") as fh:
            for i in range(3):
                fh.write(formatter.format(make_record(logging.INFO, f"appended {i}", i, "/w/m.py", 1)) + "\n")
                fh.flush()
                time.sleep(0.3)
        received = sink.wait_for(3, timeout=60, collector=collector)
    finally:
        sink.close()
    assert sorted(body_of(r) for _, _, r in received) == ["appended 0", "appended 1", "appended 2"]
    for resource, scope, record in received:
        # A numeric-looking id stays a string.
        assert resource == {
            "splight.component.id": "12345",
            "splight.process.type": "agent",
            "service.name": "splight-agent",
        }
        assert attrs(record.attributes)["splight.logger.name"] == "splight-dev"
        assert scope == "splight-dev"


def test_persistent_queue_survives_restart_while_gateway_is_down(run_collector, tmp_path: Path) -> None:
    gateway_port = free_port()  # nothing listens here yet: the gateway is down
    log = tmp_path / "components.log"
    formatter = splight_formatter()
    log.write_text(
        "".join(
            formatter.format(make_record(logging.WARNING, f"queued {i}", i, "/app/main.py", 7)) + "\n" for i in range(5)
        )
    )
    env, ports = agent_env(tmp_path, gateway_port, SPLIGHT_FILELOG_START_AT="beginning")
    first = run_collector(AGENT, env, name="first")
    first.wait_healthy(ports["health"])

    # Wait until the file_log receiver has handed the records on, then give the
    # batch processor time to pass them to the exporter's persistent queue.
    deadline = time.monotonic() + 30
    while metric_value(ports["metrics"], "otelcol_receiver_accepted_log_records", 'receiver="file_log"') < 5:
        assert time.monotonic() < deadline, "file_log never accepted the records:\n" + first.log_text()
        time.sleep(0.2)
    time.sleep(2)
    assert first.stop() == 0, first.log_text()

    sink = Sink(gateway_port)
    try:
        second = run_collector(AGENT, env, name="second")
        second.wait_healthy(ports["health"])
        received = sink.wait_for(5, timeout=60, collector=second)
    finally:
        sink.close()
    bodies = sorted(body_of(r) for _, _, r in received)
    # Delivered from the queue, once each: the file offset was kept too, so
    # the file was not read again.
    assert bodies == [f"queued {i}" for i in range(5)], bodies
    for resource, _, record in received:
        assert resource["splight.component.id"] == COMPONENT_ID
        assert record.severity_text == "WARNING"


def test_agent_never_forwards_files_left_before_it_first_started(run_collector, tmp_path: Path) -> None:
    """Default start_at end: a file already there is not forwarded; new files are read whole; restarts resume."""
    formatter = splight_formatter()

    def append(path: Path, *messages: str) -> None:
        with path.open("a") as fh:
            for i, message in enumerate(messages):
                fh.write(formatter.format(make_record(logging.INFO, message, i, "/app/main.py", 1)) + "\n")

    logs = tmp_path / "logs"
    logs.mkdir()
    left = logs / "left.log"
    append(left, "left 0", "left 1")  # another program's file, there before the agent
    sink = Sink()
    try:
        env, ports = agent_env(tmp_path, sink.port, SPLIGHT_COMPONENT_LOG=str(logs / "*.log"))
        first = run_collector(AGENT, env, name="first")
        first.wait_healthy(ports["health"])
        time.sleep(1.5)  # past the receiver's first poll (every 200 ms)
        append(left, "appended 0")
        append(logs / "new.log", "new 0", "new 1")  # created after the start: read from its first line
        sink.wait_for(3, timeout=60, collector=first)
        assert first.stop() == 0, first.log_text()

        append(left, "while stopped 0")  # a known file: the restart resumes at its offset
        appeared = logs / "appeared.log"
        append(appeared, "appeared while stopped")  # after the first start: read whole at the restart
        second = run_collector(AGENT, env, name="second")
        second.wait_healthy(ports["health"])
        time.sleep(1.5)
        append(appeared, "appeared after restart")
        received = sink.wait_for(6, timeout=60, collector=second)
    finally:
        sink.close()
    bodies = sorted(body_of(r) for _, _, r in received)
    assert bodies == sorted(
        ["appended 0", "new 0", "new 1", "while stopped 0", "appeared while stopped", "appeared after restart"]
    ), bodies


def test_validate_reports_bad_config(collector_binary: Path, tmp_path: Path) -> None:
    """Sanity check that `validate` really checks: a broken copy of the agent config fails."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(AGENT.read_text().replace("max_elapsed_time: 0", "max_elapsed_time: soon", 1))
    result = subprocess.run(
        [str(collector_binary), "validate", "--config", str(broken)],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "max_elapsed_time" in result.stdout + result.stderr
