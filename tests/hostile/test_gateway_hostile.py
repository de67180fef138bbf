"""Hostile clients against ``splight-runner gateway`` as its own process (issue 12, gateway part).

Each test starts the real command, does what an adversarial or broken client
does, and measures the gateway process (psutil): peak memory per request, CPU
while idle connections are held, answers within a deadline.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import re
import resource
import signal
import socket
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from splight_runner.dev_engine.server import DevEngine
from support import RUNNER, engine_env

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MIB = 1024 * 1024
#: The gateway's default body limit (16 MiB): the unit of its memory bound.
BODY_LIMIT = 16 * MIB
#: JSON bodies get a 16th of it (a decoded JSON document is up to ~20 times its size).
JSON_LIMIT = BODY_LIMIT // 16
#: What one request may add to the gateway's peak memory: the body limit times a small factor.
MEMORY_BOUND = 4 * BODY_LIMIT


# -- the gateway as a process ----------------------------------------------------------------


class GatewayProcess:
    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.port = port
        self.ps = psutil.Process(process.pid)

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def reset_peak(self) -> bool:
        """Restart the kernel's peak-RSS counter (VmHWM) of the process; False where it cannot."""
        try:
            Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")
        except OSError:
            return False
        return True

    def peak(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM")

    def cpu(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system


@contextlib.contextmanager
def gateway_process(engine: DevEngine, *args: str, nofile: int | None = None, **env: str) -> Iterator[GatewayProcess]:
    def limit_files() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    process = subprocess.Popen(
        [*RUNNER, "gateway", "--listen", "127.0.0.1:0", *args],
        env=engine_env(engine, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=limit_files,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
    if match is None:
        process.kill()
        pytest.fail(f"no listening line: {line!r} {process.communicate()}")
    try:
        yield GatewayProcess(process, int(match.group(1)))
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def post(
    port: int,
    body: bytes,
    *,
    content_type: str = PROTOBUF,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/v1/logs", body=body, headers={"Content-Type": content_type, **(headers or {})})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def peak_growth(gateway: GatewayProcess, send: Callable[[], object]) -> int:
    """Bytes the gateway's peak RSS rose above its RSS before ``send()`` ran."""
    time.sleep(0.2)
    before = gateway.rss()
    if not gateway.reset_peak():
        pytest.skip("no /proc/PID/clear_refs: cannot measure the peak")
    send()
    return gateway.peak() - before


# -- requests ---------------------------------------------------------------------------------


def _length_delimited(field: int, data: bytes) -> bytes:
    header = bytearray([field << 3 | 2])
    n = len(data)
    while True:
        bits, n = n & 0x7F, n >> 7
        header.append(bits | 0x80 if n else bits)
        if not n:
            return bytes(header) + data


def _resource(component_id: str) -> bytes:
    """A Resource with ``splight.component.id``."""
    value = _length_delimited(1, component_id.encode())  # AnyValue.string_value
    key_value = _length_delimited(1, b"splight.component.id") + _length_delimited(2, value)
    return _length_delimited(1, key_value)  # Resource.attributes


def empty_records(n: int) -> bytes:
    """An ExportLogsServiceRequest of ``n`` empty log records (2 bytes each on the wire)."""
    scope_logs = _length_delimited(2, b"\x12\x00" * n)  # ScopeLogs.log_records, empty
    resource_logs = _length_delimited(1, _resource("C1")) + scope_logs
    return _length_delimited(1, resource_logs)


def gzip_bomb(n: int) -> bytes:
    return gzip.compress(empty_records(n), 9)


def big_records(total_bytes: int, size: int) -> bytes:
    """A protobuf request of log records with a ``size``-byte message each, ``total_bytes`` in all."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    attribute = resource_logs.resource.attributes.add()
    attribute.key = "splight.component.id"
    attribute.value.string_value = "C1"
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = "hostile"
    text = "x" * size
    for i in range(total_bytes // (size + 24)):
        record = scope_logs.log_records.add()
        record.time_unix_nano = 1_704_067_200_000_000_000 + i
        record.severity_number = 9  # type: ignore[assignment]
        record.body.string_value = text
    return request.SerializeToString()


def attribute_bomb(total_bytes: int) -> bytes:
    """One log record holding as many empty attributes as fit in ``total_bytes``."""
    record = b"\x32\x00" * (total_bytes // 2 - 64)  # LogRecord.attributes, empty KeyValue
    scope_logs = _length_delimited(2, _length_delimited(2, record))
    return _length_delimited(1, _length_delimited(1, _resource("C1")) + scope_logs)


def json_records(total_bytes: int, records: int) -> bytes:
    """OTLP JSON: ``{}`` records filling ``total_bytes``, or (``records=1``) one record whose
    attributes are ``{}`` filling it."""
    fill = ",".join(["{}"] * ((total_bytes - 200) // 3))
    resource = '{"attributes":[{"key":"splight.component.id","value":{"stringValue":"C1"}}]}'
    logs = '[{"attributes":[' + fill + "]}]" if records else "[" + fill + "]"
    return ('{"resourceLogs":[{"resource":' + resource + ',"scopeLogs":[{"logRecords":' + logs + "}]}]}").encode()


# -- records per request and memory per request ------------------------------------------------


def test_a_2kb_gzip_of_a_million_empty_records_is_413_at_once(dev_engine: DevEngine) -> None:
    """Issue 12: 25 MB → 543 MB peak and 356 Engine POSTs. Now: refused before anything is built."""
    bomb = gzip_bomb(1_000_000)
    assert len(bomb) < 4096
    with gateway_process(dev_engine) as gateway:
        started = time.monotonic()
        reply: list[tuple[int, dict[str, str], bytes]] = []
        growth = peak_growth(
            gateway, lambda: reply.append(post(gateway.port, bomb, headers={"Content-Encoding": "gzip"}))
        )
        elapsed = time.monotonic() - started
        status, _, body = reply[0]
    assert status == 413, body
    assert b"100000 log records" in body
    assert dev_engine.requests == []
    assert elapsed < 10
    assert growth < 32 * MIB, f"peak grew {growth / MIB:.1f} MiB"
    print(f"\n1M-record gzip bomb: 413 in {elapsed:.2f} s, peak +{growth / MIB:.1f} MiB")


def test_without_the_record_cap_memory_stays_bounded_and_records_are_built_per_post(dev_engine: DevEngine) -> None:
    """The same bomb with the cap lifted: the Engine refuses the first POST, so one POST is tried
    (records are translated one POST at a time, after a slot is taken) and memory stays bounded."""
    with gateway_process(dev_engine, "--max-records", "10000000") as gateway:
        dev_engine.fail_next(1000, 503, endpoint="logs")
        reply: list[tuple[int, dict[str, str], bytes]] = []
        growth = peak_growth(
            gateway,
            lambda: reply.append(post(gateway.port, gzip_bomb(1_000_000), headers={"Content-Encoding": "gzip"})),
        )
    status, headers, _ = reply[0]
    assert status == 503 and int(headers["retry-after"]) >= 1
    assert len(dev_engine.requests) == 1
    assert growth < MEMORY_BOUND, f"peak grew {growth / MIB:.1f} MiB"
    print(f"\n1M empty records, cap lifted, Engine refusing: 503 after 1 POST, peak +{growth / MIB:.1f} MiB")


@pytest.mark.parametrize(
    ("name", "build", "expected"),
    [
        ("16 MB of 1 KiB records", lambda: big_records(BODY_LIMIT - 4096, 1024), 200),
        ("16 MB of 100 KiB records", lambda: big_records(BODY_LIMIT - 4096, 100 * 1024), 200),
        ("16 MB of empty attributes in one record", lambda: attribute_bomb(BODY_LIMIT - 4096), 413),
        ("1 MB of JSON empty records", lambda: json_records(JSON_LIMIT, 0), 413),
        ("1 MB of JSON empty attributes in one record", lambda: json_records(JSON_LIMIT, 1), 413),
    ],
)
def test_a_body_at_the_limit_stays_within_the_memory_bound(
    dev_engine: DevEngine, name: str, build: Callable[[], bytes], expected: int
) -> None:
    body = build()
    limit = JSON_LIMIT if "JSON" in name else BODY_LIMIT
    assert limit * 0.99 < len(body) <= limit
    content_type = JSON if "JSON" in name else PROTOBUF
    with gateway_process(dev_engine) as gateway:
        reply: list[tuple[int, dict[str, str], bytes]] = []
        started = time.monotonic()
        growth = peak_growth(
            gateway, lambda: reply.append(post(gateway.port, body, content_type=content_type, timeout=60))
        )
        elapsed = time.monotonic() - started
    assert reply[0][0] == expected, reply[0][2][:300]
    assert growth < MEMORY_BOUND, f"{name}: peak grew {growth / MIB:.1f} MiB"
    print(f"\n{name}: {expected} in {elapsed:.2f} s, peak +{growth / MIB:.1f} MiB")


# -- idle connections ----------------------------------------------------------------------------


def test_300_idle_connections_under_256_descriptors_neither_starve_nor_spin(dev_engine: DevEngine) -> None:
    """Issue 12: 100 % CPU and real requests timing out. Now: idle ones make room, the CPU stays idle."""
    request = _length_delimited(1, _length_delimited(1, _resource("C1")) + _length_delimited(2, b""))
    with gateway_process(dev_engine, nofile=256) as gateway:
        idle: list[socket.socket] = []
        try:
            for _ in range(300):
                with contextlib.suppress(OSError):
                    idle.append(socket.create_connection(("127.0.0.1", gateway.port), timeout=2))
            time.sleep(0.5)
            cpu_before = gateway.cpu()
            time.sleep(3.0)
            idle_cpu = gateway.cpu() - cpu_before
            started = time.monotonic()
            status, _, _ = post(gateway.port, request, timeout=10)
            answered = time.monotonic() - started
            cpu_before = gateway.cpu()
            time.sleep(2.0)
            after_cpu = gateway.cpu() - cpu_before
        finally:
            for sock in idle:
                sock.close()
    assert status == 200
    assert answered < 2.0, f"answered after {answered:.2f} s"
    assert idle_cpu < 0.3, f"{idle_cpu:.2f} s of CPU in 3 s with {len(idle)} idle connections"
    assert after_cpu < 0.2, f"{after_cpu:.2f} s of CPU in 2 s after the request"
    print(
        f"\n300 idle connections, ulimit -n 256: CPU {idle_cpu:.3f} s in 3 s, real request answered in {answered:.3f} s"
    )


# -- token rule ------------------------------------------------------------------------------------


def test_a_non_loopback_listen_without_a_token_refuses_to_start(dev_engine: DevEngine) -> None:
    for listen in ("0.0.0.0:0", "[::]:0"):
        done = subprocess.run(
            [*RUNNER, "gateway", "--listen", listen],
            env=engine_env(dev_engine),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 2, done
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "SPLIGHT_GATEWAY_TOKEN" in lines[0], done.stderr
        assert done.stdout == ""


def test_a_non_loopback_listen_with_a_token_requires_it(dev_engine: DevEngine) -> None:
    process = subprocess.Popen(
        [*RUNNER, "gateway", "--listen", "0.0.0.0:0"],
        env=engine_env(dev_engine, SPLIGHT_GATEWAY_TOKEN="hostile-test-token"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"listening on http://0\.0\.0\.0:(\d+) \(bearer token required\)", line)
        assert match, line
        port = int(match.group(1))
        body = empty_records(0)
        forged = _length_delimited(1, _length_delimited(1, _resource("C1")))
        assert post(port, forged)[0] == 401
        assert post(port, body, headers={"Authorization": "Bearer nope"})[0] == 401
        assert post(port, body, headers={"Authorization": "Bearer hostile-test-token"})[0] == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=15)
    assert dev_engine.requests == []


# -- the Engine refuses the gateway's credentials -----------------------------------------------


def test_wrong_engine_credentials_keep_the_records_at_the_collector(dev_engine: DevEngine) -> None:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    attribute = resource_logs.resource.attributes.add()
    attribute.key = "splight.component.id"
    attribute.value.string_value = "C1"
    resource_logs.scope_logs.add().log_records.add().body.string_value = "kept"
    body = request.SerializeToString()
    with gateway_process(dev_engine, SPLIGHT_SECRET_KEY="WRONG-SECRET-42") as gateway:
        replies = [post(gateway.port, body) for _ in range(6)]
        gateway.process.send_signal(signal.SIGTERM)
        _, err = gateway.process.communicate(timeout=15)
    assert [status for status, _, _ in replies] == [503] * 6
    assert all(int(headers["retry-after"]) >= 1 for _, headers, _ in replies)
    said = [line for line in err.splitlines() if "credentials" in line]
    assert len(said) == 1, err
    assert "WRONG-SECRET-42" not in err
    assert dev_engine.records == []


# -- property: any bytes, any JSON -------------------------------------------------------------


@pytest.fixture(scope="module")
def engine_for_properties() -> Iterator[DevEngine]:
    with DevEngine() as engine:
        yield engine


@pytest.fixture(scope="module")
def gateway_for_properties(engine_for_properties: DevEngine) -> Iterator[GatewayProcess]:
    with gateway_process(engine_for_properties) as gateway:
        yield gateway


ALLOWED = {200, 400, 413, 415}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=40,
)
otlp_keys = st.sampled_from(
    [
        "timeUnixNano",
        "observedTimeUnixNano",
        "severityNumber",
        "severityText",
        "body",
        "attributes",
        "traceId",
        "spanId",
        "eventName",
        "flags",
    ]
)
otlp_shaped = st.builds(
    lambda resource, records: {"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": records}]}]},
    st.one_of(
        json_values,
        st.just({"attributes": [{"key": "splight.component.id", "value": {"stringValue": "C1"}}]}),
    ),
    st.lists(st.dictionaries(otlp_keys, json_values, max_size=6), max_size=5),
)


def _post_measured(
    gateway: GatewayProcess, body: bytes, *, content_type: str = PROTOBUF, headers: dict[str, str] | None = None
) -> int:
    """Post; the answer's status, after checking the gateway lives and its peak stayed in bound."""
    before = gateway.rss()
    measured = gateway.reset_peak()
    status, _, _ = post(gateway.port, body, content_type=content_type, headers=headers, timeout=20)
    assert gateway.process.poll() is None
    if measured:
        growth = gateway.peak() - before
        assert growth < MEMORY_BOUND, f"peak grew {growth / MIB:.1f} MiB"
    return status


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.binary(max_size=2048),
    content_type=st.sampled_from([PROTOBUF, "application/protobuf", JSON, "text/plain", ""]),
    encoding=st.sampled_from(["identity", "gzip", "deflate", "bogus-gzip"]),
)
def test_any_bytes_get_200_400_413_or_415(
    gateway_for_properties: GatewayProcess, data: bytes, content_type: str, encoding: str
) -> None:
    headers = {}
    if encoding == "gzip":
        data, headers = gzip.compress(data), {"Content-Encoding": "gzip"}
    elif encoding == "deflate":
        data, headers = zlib.compress(data), {"Content-Encoding": "deflate"}
    elif encoding == "bogus-gzip":
        headers = {"Content-Encoding": "gzip"}
    status = _post_measured(gateway_for_properties, data, content_type=content_type, headers=headers)
    assert status in ALLOWED


#: Repeated units of a request that cost little on the wire and much when parsed.
UNITS = {
    "empty records": (lambda n: empty_records(n)),
    "empty attributes": (lambda n: attribute_bomb(2 * n + 128)),
    "empty resource groups": (lambda n: b"\x0a\x00" * n),
    "empty scope groups": (lambda n: _length_delimited(1, _length_delimited(1, _resource("C1")) + b"\x12\x00" * n)),
}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(unit=st.sampled_from(sorted(UNITS)), count=st.integers(min_value=0, max_value=8_000_000))
def test_compressed_repetitions_get_200_or_413_within_the_memory_bound(
    gateway_for_properties: GatewayProcess, unit: str, count: int
) -> None:
    body = zlib.compress(UNITS[unit](count), 9)
    status = _post_measured(gateway_for_properties, body, headers={"Content-Encoding": "deflate"})
    assert status in (200, 413)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=st.one_of(json_values, otlp_shaped))
def test_any_json_gets_200_400_or_413(gateway_for_properties: GatewayProcess, document: object) -> None:
    status = _post_measured(gateway_for_properties, json.dumps(document).encode(), content_type=JSON)
    assert status in ALLOWED


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cuts=st.lists(st.tuples(st.integers(min_value=0), st.binary(max_size=8)), min_size=1, max_size=6),
)
def test_mangled_protobuf_requests_get_200_or_400(gateway_for_properties: GatewayProcess, cuts: list) -> None:
    """A real request with bytes replaced: the wire walk must refuse, never crash, on any damage."""
    data = bytearray(big_records(4000, 40))
    for position, replacement in cuts:
        at = position % len(data)
        data[at : at + len(replacement)] = replacement
    assert _post_measured(gateway_for_properties, bytes(data)) in (200, 400)


def test_the_property_gateway_still_delivers(
    gateway_for_properties: GatewayProcess, engine_for_properties: DevEngine
) -> None:
    """Runs after the properties (file order): the gateway is alive and delivers a good request."""
    assert gateway_for_properties.process.poll() is None
    assert post(gateway_for_properties.port, big_records(2000, 40))[0] == 200
    assert engine_for_properties.wait_for(lambda engine: len(engine.records) > 0)


# -- a crowd of slow clients -------------------------------------------------------------------------


def _trickle(port: int, count: int) -> tuple[list[socket.socket], threading.Event, threading.Thread]:
    """``count`` connections that send a request head one byte at a time, a byte every 4 s each."""
    slow = []
    for _ in range(count):
        with contextlib.suppress(OSError):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.setblocking(False)
            slow.append(sock)
    stop = threading.Event()
    head = b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"

    def drip() -> None:
        step = 0
        while not stop.wait(4.0 / max(1, len(slow)) * 50):
            for sock in slow[step % 50 :: 50]:
                with contextlib.suppress(OSError):
                    sock.send(head[(step // 50) % len(head) : (step // 50) % len(head) + 1])
            step += 1

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    return slow, stop, thread


@pytest.mark.parametrize("crowd", [300, pytest.param(2000, marks=pytest.mark.slow)])
def test_a_crowd_of_trickling_clients_never_delays_a_real_request(crowd: int, dev_engine: DevEngine) -> None:
    """300 trickling connections once reset 70 of 200 requests and delayed one by 62 s."""
    request = _length_delimited(1, _length_delimited(1, _resource("C1")) + _length_delimited(2, b""))
    with gateway_process(dev_engine) as gateway:
        slow, stop, dripping = _trickle(gateway.port, crowd)
        try:
            time.sleep(2.0)
            process = psutil.Process(gateway.process.pid)
            latencies: list[float] = []
            statuses: list[int] = []
            lock = threading.Lock()

            def send(_: int) -> None:
                started = time.monotonic()
                try:
                    status, _, _ = post(gateway.port, request, timeout=10)
                except OSError:
                    status = 0
                with lock:
                    statuses.append(status)
                    latencies.append(time.monotonic() - started)

            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(20) as pool:
                list(pool.map(send, range(200)))
            threads = process.num_threads()
            rss = process.memory_info().rss
        finally:
            stop.set()
            dripping.join(10)
            for sock in slow:
                sock.close()
    assert statuses == [200] * 200, sorted(set(statuses))
    assert max(latencies) < 2.0, f"slowest request answered after {max(latencies):.2f} s"
    assert threads < 80, f"{threads} threads with {crowd} slow connections"
    assert rss < 200 << 20, f"{rss >> 20} MiB with {crowd} slow connections"
    print(f"\n{crowd} trickling connections: 200 requests, slowest {max(latencies):.3f} s, {threads} threads")
