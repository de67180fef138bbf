"""Component → OpenTelemetry Collector (splight-otelcol, agent.yaml) → ``splight-runner gateway`` → Engine.

Everything is real and runs on 127.0.0.1 with free ports: the collector binary
built from collector-config/manifest.yaml, the gateway (in this process, so it
can be stopped and started on the same port), a DevEngine as the Engine, and
components run under ``opentelemetry-instrument`` exporting plain OTLP/HTTP.
Every process is started and stopped by the test; every wait is bounded.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from agent_env import agent_env
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from splight_runner.dev_engine.server import DevEngine
from splight_runner.engine import records as translation
from splight_runner.gateway.server import Gateway
from splight_runner.settings import EngineSettings
from support import free_port

REPO = Path(__file__).resolve().parents[2]
AGENT = REPO / "collector-config" / "agent.yaml"
COMPONENTS = REPO / "tests" / "components"
INSTRUMENT = Path(sys.executable).with_name("opentelemetry-instrument")
BUILD_TIMEOUT_SECONDS = int(os.environ.get("SPLIGHT_COLLECTOR_BUILD_TIMEOUT", "2700"))
pytestmark = [pytest.mark.collector, pytest.mark.timeout(BUILD_TIMEOUT_SECONDS + 600)]

COMPONENT_ID = "C1"
T0 = 1_704_067_200  # 2024-01-01T00:00:00Z
#: Longest wait for records to travel the whole chain once it is up.
DELIVERY_TIMEOUT = 60.0


# -- the chain -------------------------------------------------------------------------------------


@dataclass
class Chain:
    """DevEngine ← gateway ← collector, all on loopback; the gateway can go down and come back."""

    engine: DevEngine
    gateway_port: int
    collector_env: dict[str, str]
    ports: dict[str, int]
    start_collector: Callable[..., Any]
    collector: Any = None
    gateway: Gateway | None = None

    def start_gateway(self) -> None:
        settings = EngineSettings(
            host=self.engine.url, api_version="v3", access_id="dev-access", secret_key="dev-secret"
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                self.gateway = Gateway(("127.0.0.1", self.gateway_port), settings, engine_timeout=5.0).start()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop_gateway(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
            self.gateway = None

    def run_collector(self, name: str = "collector") -> None:
        self.collector = self.start_collector(AGENT, self.collector_env, name)
        self.collector.wait_healthy(self.ports["health"], timeout=60)

    def post_otlp(self, request: ExportLogsServiceRequest) -> int:
        """Send to the collector's OTLP/HTTP receiver, as an SDK would."""
        conn = http.client.HTTPConnection("127.0.0.1", self.ports["http"], timeout=30)
        try:
            conn.request(
                "POST",
                "/v1/logs",
                body=request.SerializeToString(),
                headers={"Content-Type": "application/x-protobuf"},
            )
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    def wait_for_messages(self, count: int, timeout: float = DELIVERY_TIMEOUT) -> list[str]:
        """Wait until ``count`` records arrived, then a little longer so late duplicates show up too."""
        if not self.engine.wait_for(lambda engine: len(engine.records) >= count, timeout=timeout):
            log = self.collector.log_text() if self.collector is not None else ""
            pytest.fail(f"the Engine got {len(self.engine.records)} of {count} records\ncollector log:\n{log[-4000:]}")
        time.sleep(3)
        return [record["message"] for record in self.engine.records]

    def queue_size(self) -> float:
        """The exporter's sending-queue size from the collector's own metrics (0 when unreadable)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['metrics']}/metrics", timeout=5) as answer:
                text = answer.read().decode()
        except OSError:
            return 0.0
        total = 0.0
        for line in text.splitlines():
            match = re.match(r"otelcol_exporter_queue_size\{([^}]*)\} (\S+)$", line)
            if match and "gateway" in match.group(1):
                total += float(match.group(2))
        return total


@pytest.fixture
def chain(tmp_path: Path, dev_engine: DevEngine, run_collector: Callable[..., Any]) -> Iterator[Chain]:
    gateway_port = free_port()
    env, ports = agent_env(
        tmp_path,
        gateway_port,
        COMPONENT_ID,
        PATH=os.environ.get("PATH", "/usr/bin:/bin"),
        # Retry the gateway often, so a test does not wait out a long backoff after it comes back.
        SPLIGHT_GATEWAY_RETRY_MAX_INTERVAL="2s",
    )
    built = Chain(dev_engine, gateway_port, env, ports, run_collector)
    built.start_gateway()
    try:
        built.run_collector()
        yield built
    finally:
        built.stop_gateway()


def otlp_request(messages: list[str], *, component_id: str = COMPONENT_ID) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(
        [
            KeyValue(key=translation.RESOURCE_COMPONENT_ID, value=AnyValue(string_value=component_id)),
            KeyValue(key="service.name", value=AnyValue(string_value="e2e")),
        ]
    )
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = "e2e"
    now = time.time_ns()
    for index, message in enumerate(messages):
        record = scope_logs.log_records.add()
        record.time_unix_nano = now + index * 1000
        record.observed_time_unix_nano = now + index * 1000
        record.severity_number = 9  # type: ignore[assignment]
        record.severity_text = "INFO"
        record.body.string_value = message
    return request


def send_batches(chain: Chain, prefix: str, batches: int, per_batch: int) -> list[str]:
    sent: list[str] = []
    for batch in range(batches):
        messages = [f"{prefix}-{batch}-{i}" for i in range(per_batch)]
        assert chain.post_otlp(otlp_request(messages)) == 200
        sent += messages
    return sent


def assert_exactly_once(received: list[str], sent: list[str]) -> None:
    counts = Counter(received)
    missing = [m for m in sent if counts[m] == 0]
    duplicated = {m: n for m, n in counts.items() if n > 1}
    assert not missing, f"{len(missing)} records lost, e.g. {missing[:5]}"
    assert not duplicated, f"{len(duplicated)} records duplicated, e.g. {list(duplicated.items())[:5]}"
    assert sorted(received) == sorted(sent)


# -- (1) a component under opentelemetry-instrument ----------------------------------------------

COMPONENT = '''
import json
import logging
import sys

seen = []


class Spy(logging.Handler):
    """Keeps what the Engine record must be made of, to print it for the test."""

    def emit(self, record):
        seen.append({
            "name": record.name,
            "message": record.getMessage(),
            "levelname": record.levelname,
            "created": record.created,
            "traceback": logging.Formatter().formatException(record.exc_info) if record.exc_info else "",
            "tags": getattr(record, "tags", None),
        })


logging.getLogger().addHandler(Spy())
logging.getLogger().setLevel(logging.DEBUG)
log = logging.getLogger("e2e.component")
log.info("reading %d values", 42, extra={"tags": {"asset": "A1", "kind": "sensor"}})
log.warning("slow sensor | 3 s")
try:
    {}["missing"]
except KeyError:
    log.exception("lookup failed")
log.debug("debug detail", extra={"tags": ["x", "y"]})
logging.getLogger("other.logger").critical("ünïcode and\\nsecond line")
print(json.dumps(seen), flush=True)
'''


def instrumented_env(chain: Chain, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "SPLIGHT_", "COMPONENT_ID", "COMPUTE_NODE_ID", "AGENT_ID", "PROCESS_TYPE"))
    }
    env.update(
        OTEL_PYTHON_DISTRO="splight",
        OTEL_LOGS_EXPORTER="otlp",
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{chain.ports['http']}",
        OTEL_BLRP_SCHEDULE_DELAY="100",
        COMPONENT_ID=COMPONENT_ID,
        SPLIGHT_RUNNER_SECRETS_DIR="/nonexistent-splight-secrets",
        SPLIGHT_COMPONENT_LOG_FILE=str(tmp_path / "splight-lib-own.log"),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def test_component_records_travel_otlp_collector_gateway_to_the_engine_exactly(chain: Chain, tmp_path: Path) -> None:
    main = tmp_path / "component" / "main.py"
    main.parent.mkdir()
    main.write_text(COMPONENT, encoding="utf-8")
    done = subprocess.run(
        [str(INSTRUMENT), sys.executable, "main.py"],
        cwd=main.parent,
        env=instrumented_env(chain, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(seen) == 5
    chain.wait_for_messages(len(seen))
    assert chain.engine.records == [
        {
            "sender_type": "component",
            "id": COMPONENT_ID,
            "name": item["name"],
            "message": item["message"],
            "loglevel": item["levelname"],
            "filename": "main.py",
            "traceback": item["traceback"],
            "tags": item["tags"],
            "timestamp": translation.rfc3339(int(item["created"] * 1e9)),
        }
        for item in seen
    ]
    assert "KeyError: 'missing'" in chain.engine.records[2]["traceback"]
    # The final status is the pipeline's last record, to every exporter: through OTLP it reaches the Engine too.
    assert chain.engine.wait_for(lambda engine: engine.statuses, timeout=DELIVERY_TIMEOUT)
    assert chain.engine.statuses == [(COMPONENT_ID, "Succeeded")]
    assert "Traceback" not in done.stderr


RUNNER_COMPONENT = """
import logging, os, signal, sys, time
log = logging.getLogger("app")
log.setLevel(logging.INFO)
for i in range(20):
    log.info("record %d", i)
ending = sys.argv[-1]  # run-component passes what follows its "--" after --component-id
if ending == "kill":
    time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGKILL)
sys.exit(int(ending))
"""


@pytest.mark.parametrize(
    ("ending", "code", "status"), [("0", 0, "Succeeded"), ("3", 3, "Failed"), ("kill", 137, "Failed")]
)
def test_run_component_in_collector_mode_sends_records_and_the_final_status(
    chain: Chain, tmp_path: Path, ending: str, code: int, status: str
) -> None:
    """OTEL_LOGS_EXPORTER=otlp and no Engine credentials in the component: the final status still arrives."""
    main = tmp_path / "component" / "main.py"
    main.parent.mkdir()
    main.write_text(RUNNER_COMPONENT, encoding="utf-8")
    env = instrumented_env(chain, tmp_path)
    env.pop("OTEL_PYTHON_DISTRO")
    runner = [sys.executable, "-m", "splight_runner", "run-component", str(main), f"--component-id={COMPONENT_ID}"]
    done = subprocess.run([*runner, "--", ending], env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == code, done.stderr
    chain.wait_for_messages(20)
    assert chain.engine.wait_for(lambda engine: engine.statuses, timeout=DELIVERY_TIMEOUT)
    messages = [record["message"] for record in chain.engine.records]
    assert sorted(m for m in messages if m.startswith("record ")) == sorted(f"record {i}" for i in range(20))
    # After an abnormal end the runner's how-it-ended record travels the same way, through the collector.
    ending_records = [m for m in messages if not m.startswith("record ")]
    if code == 0:
        assert ending_records == []
    else:
        expected = "The component exited with code 3." if code == 3 else "The component was killed by SIGKILL"
        assert len(ending_records) == 1 and ending_records[0].startswith(expected), ending_records
    assert chain.engine.statuses == [(COMPONENT_ID, status)]


def test_splight_lib_statuses_travel_to_update_status(chain: Chain, tmp_path: Path) -> None:
    """A real splight-lib component: Running then Stopped, sent once each, after the logs before them."""
    done = subprocess.run(
        [str(INSTRUMENT), sys.executable, "main.py", "--component-id", COMPONENT_ID],
        cwd=COMPONENTS / "splight_finishing",
        env=instrumented_env(chain, tmp_path),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    assert chain.engine.wait_for(lambda engine: len(engine.statuses) >= 2, timeout=DELIVERY_TIMEOUT), (
        chain.engine.statuses,
        chain.collector.log_text()[-3000:],
    )
    time.sleep(2)
    assert chain.engine.statuses == [(COMPONENT_ID, "Running"), (COMPONENT_ID, "Stopped")]
    messages = [record["message"] for record in chain.engine.records]
    assert "run 1" in messages and "run 2" in messages
    assert all(record["id"] == COMPONENT_ID for record in chain.engine.records)


# -- (2) the gateway down for 30 s -------------------------------------------------------------------


def test_gateway_down_for_30_seconds_loses_nothing_and_duplicates_nothing(chain: Chain) -> None:
    sent = send_batches(chain, "before", 1, 5)
    assert_exactly_once(chain.wait_for_messages(len(sent)), sent)

    chain.stop_gateway()
    sent += send_batches(chain, "outage", 20, 50)
    time.sleep(30)
    assert len(chain.engine.records) == 5
    chain.start_gateway()
    sent += send_batches(chain, "after", 2, 10)
    assert_exactly_once(chain.wait_for_messages(len(sent)), sent)


def test_engine_outage_behind_the_gateway_loses_nothing_and_duplicates_nothing(chain: Chain) -> None:
    """The gateway answers 503 + Retry-After while the Engine refuses; the collector keeps and retries."""
    chain.engine.refuse_for(6)
    sent = send_batches(chain, "engine-down", 10, 100)
    assert_exactly_once(chain.wait_for_messages(len(sent)), sent)
    assert chain.gateway is not None and chain.gateway.stats.answered_503 >= 1


# -- (3) the collector SIGKILLed while the gateway is down --------------------------------------------


def test_collector_killed_while_the_gateway_is_down_delivers_its_queue_exactly_once(chain: Chain) -> None:
    sent = send_batches(chain, "warm", 1, 3)
    assert_exactly_once(chain.wait_for_messages(len(sent)), sent)

    chain.stop_gateway()
    sent += send_batches(chain, "queued", 10, 30)
    # The batch processor hands records to the persistent queue within its timeout (200 ms here).
    deadline = time.monotonic() + 20
    while chain.queue_size() < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert chain.queue_size() >= 1, "the records never reached the exporter's persistent queue"
    time.sleep(1)
    chain.collector.proc.kill()
    chain.collector.proc.wait(timeout=10)

    chain.run_collector(name="collector-restarted")
    time.sleep(2)  # the restarted collector retries against a gateway that is still down
    chain.start_gateway()
    assert_exactly_once(chain.wait_for_messages(len(sent)), sent)


def test_collector_retrying_a_partly_accepted_request_across_its_own_restart_duplicates_nothing(
    chain: Chain,
) -> None:
    """1024 records = one collector request = two logs/write POSTs; the Engine takes the first, then fails.

    The collector keeps the whole request and retries it (also after being
    SIGKILLed and restarted); the gateway recognises the POST it already
    delivered and sends only the rest.
    """
    engine = chain.engine
    sent = [f"big-{i}" for i in range(1024)]
    engine.set_delay(0.3)

    def fail_after_the_first_post() -> None:
        engine.wait_for(lambda got: len(got.records) >= 1000, timeout=30)
        engine.fail_next(100_000, 503, endpoint="logs")
        engine.set_delay(0)

    watcher = threading.Thread(target=fail_after_the_first_post)
    watcher.start()
    assert chain.post_otlp(otlp_request(sent)) == 200
    watcher.join(timeout=40)
    gateway = chain.gateway
    assert gateway is not None
    deadline = time.monotonic() + 20
    while gateway.stats.records_skipped_as_duplicates < 1000 and time.monotonic() < deadline:
        time.sleep(0.2)
    # The collector's retry reached the gateway, which skipped the 1000 already accepted.
    assert gateway.stats.records_skipped_as_duplicates >= 1000
    assert len(engine.records) == 1000

    chain.collector.proc.kill()
    chain.collector.proc.wait(timeout=10)
    chain.run_collector(name="collector-restarted")
    engine.reset_faults()
    assert_exactly_once(chain.wait_for_messages(len(sent)), sent)
    assert [record["message"] for record in engine.records] == sent  # in order, too


# -- (4) splight-lib's log file through the filelog pipeline -----------------------------------------


def _splight_lines(path: Path) -> list[dict[str, Any]]:
    """Write records with splight-lib's own SplightFormatter; return the Engine records they must become."""
    from splight_lib.logging.logging import SplightFormatter

    formatter = SplightFormatter()

    def failing() -> None:
        try:
            {}["sensor"]
        except KeyError as error:
            raise RuntimeError("could not read sensors") from error

    try:
        failing()
    except RuntimeError:
        exc_info = sys.exc_info()
    cases = [
        (logging.INFO, "Component started", "main.py", 12, "RUNTIME", None),
        (logging.WARNING, "read 3 | 4 values, expected 5", "reader.py", 40, None, None),
        (logging.ERROR, "Failed reading sensors", "main.py", 57, "COMPONENT", exc_info),
        (logging.DEBUG, "debug with no tags", "util.py", 3, None, None),
        (logging.CRITICAL, "first line\nsecond line", "x.py", 9, None, None),
    ]
    lines = []
    expected = []
    for index, (level, message, filename, line, tags, exc) in enumerate(cases):
        record = logging.LogRecord("component", level, f"/app/{filename}", line, message, None, exc)
        record.created = T0 + index
        record.msecs = 0.0
        if tags is not None:
            record.tags = tags
        lines.append(formatter.format(record))
        expected.append(
            {
                "sender_type": "component",
                "id": COMPONENT_ID,
                "name": "splight",
                "message": message,
                "loglevel": logging.getLevelName(level),
                "filename": filename,
                "traceback": logging.Formatter().formatException(exc) if exc else "",
                "tags": tags,
                "timestamp": f"2024-01-01T00:00:0{index}.000000Z",
            }
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return expected


def test_filelog_pipeline_delivers_splight_lib_log_file_records(chain: Chain) -> None:
    time.sleep(1.5)  # past the file_log receiver's first poll: a file made after it is read from its first line
    expected = _splight_lines(Path(chain.collector_env["SPLIGHT_COMPONENT_LOG"]))
    chain.wait_for_messages(len(expected))
    assert chain.engine.records == expected
    # The traceback (with its chained cause) is one record, not one record per line.
    assert chain.engine.records[2]["traceback"].count("Traceback (most recent call last):") == 2


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
