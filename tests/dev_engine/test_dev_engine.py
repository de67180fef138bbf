"""The DevEngine: the Engine's two endpoints as the runner must find them, plus fault injection.

Everything is real HTTP on 127.0.0.1, spoken with http.client or a raw socket so
that each rule is checked on the wire.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from splight_runner.dev_engine.server import MAX_BODY_BYTES, DevEngine
from support import engine_record as record
from support import free_port

AUTH = "Splight dev-access dev-secret"
LOGS = "/v3/logs/write/"
STATUS = "/v3/engine/component/components/{}/update-status/"


class Answer:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = response.headers
        self.raw = response.read()
        self.json = json.loads(self.raw) if self.raw else None


def call(
    engine: DevEngine | SimpleNamespace,
    path: str,
    body: bytes | str | dict[str, Any] | None = None,
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> Answer:
    """One request; a dict body is sent as JSON, a str body as a form, with valid auth by default."""
    sent = {"Authorization": AUTH}
    if isinstance(body, dict):
        body, sent["Content-Type"] = json.dumps(body).encode(), "application/json"
    elif isinstance(body, str):
        body, sent["Content-Type"] = body.encode(), "application/x-www-form-urlencoded"
    sent.update(headers or {})
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", engine.port, timeout=5)
    try:
        conn.request(method, path, body=body, headers={k: v for k, v in sent.items() if v is not None})
        return Answer(conn.getresponse())
    finally:
        if own:
            conn.close()


def control(engine: DevEngine, path: str, body: dict[str, Any] | None = None) -> Answer:
    method = "GET" if path == "/_dev/received" else "POST"
    payload = None if body is None else json.dumps(body).encode()
    return call(engine, path, payload, method=method, headers={"Authorization": None})


def raw_exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


# -- what is accepted ------------------------------------------------------------------


def test_valid_records_are_answered_201_and_kept_exactly_as_received(dev_engine: DevEngine) -> None:
    records = [
        record(tags={"asset": "A1", "n": [1, 2]}, trace_id="0af7651916cd43dd8448eb211c80319c", span_id="b7ad6b71"),
        record(loglevel="CRITICAL", traceback="Traceback ...", tags=["x"], timestamp="2024-05-01T12:00:00+00:00"),
        {k: v for k, v in record(loglevel="DEBUG").items() if k != "timestamp"},  # the old shape
    ]

    answer = call(dev_engine, LOGS, {"records": records})

    assert answer.status == 201
    assert answer.json == {"accepted": 3}
    assert dev_engine.records == records
    [request] = dev_engine.requests
    assert (request.method, request.path, request.status, request.records) == ("POST", LOGS, 201, 3)
    assert request.accepted


def test_an_empty_records_list_is_accepted_and_writes_nothing(dev_engine: DevEngine) -> None:
    assert call(dev_engine, LOGS, {"records": []}).status == 201
    assert dev_engine.records == []


@pytest.mark.parametrize("status", ["Running", "Stopped", "Failed", "Succeeded", "Finished", "Initialized"])
def test_each_known_status_is_accepted(dev_engine: DevEngine, status: str) -> None:
    answer = call(dev_engine, STATUS.format("C1"), f"deployment_status={status}")

    assert answer.status == 200
    assert answer.json == {"id": "C1", "deployment_status": status}
    assert dev_engine.statuses == [("C1", status)]


# -- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        (None, "Authentication credentials were not provided."),
        ("Splight dev-access wrong", "Invalid credentials."),
        ("Splight dev-access  dev-secret", "Invalid credentials."),
        ("Bearer dev-secret", "Invalid credentials."),
        ("splight dev-access dev-secret", "Invalid credentials."),
    ],
)
def test_authorization_must_be_exactly_splight_access_id_secret_key(
    dev_engine: DevEngine, authorization: str | None, detail: str
) -> None:
    logs = call(dev_engine, LOGS, {"records": [record()]}, headers={"Authorization": authorization})
    status = call(
        dev_engine, STATUS.format("C1"), "deployment_status=Running", headers={"Authorization": authorization}
    )

    assert (logs.status, logs.json) == (401, {"detail": detail})
    assert (status.status, status.json) == (401, {"detail": detail})
    assert dev_engine.records == [] and dev_engine.statuses == []


def test_the_secret_is_never_printed() -> None:
    out = io.StringIO()
    with DevEngine(secret_key="s3cr3t-value", out=out) as engine:
        call(
            engine,
            LOGS,
            {"records": [record()]},
            headers={"Authorization": "Splight dev-access s3cr3t-value"},
        )
        call(engine, LOGS, {"records": [record()]}, headers={"Authorization": "Splight dev-access nope"})

    assert "s3cr3t-value" not in out.getvalue() and "nope" not in out.getvalue()
    assert "[rejected] 401 POST /v3/logs/write/: Invalid credentials." in out.getvalue()


# -- malformed bodies -----------------------------------------------------------------------

FIELDS = ("sender_type", "id", "name", "message", "loglevel", "filename", "traceback")


def without(name: str) -> dict[str, Any]:
    return {k: v for k, v in record().items() if k != name}


BAD_LOG_BODIES = [
    pytest.param(b"not json", "body is not valid JSON", id="not-json"),
    pytest.param(b"[]", "body must be a JSON object with a 'records' list", id="not-object"),
    pytest.param(b"{}", "'records' must be a list", id="no-records"),
    pytest.param(b'{"records": {}}', "'records' must be a list", id="records-not-list"),
    pytest.param(b'{"records": ["x"]}', "records[0] must be an object", id="record-not-object"),
    *(pytest.param({"records": [without(f)]}, f"records[0].{f} is required", id=f"missing-{f}") for f in FIELDS),
    *(pytest.param({"records": [record(**{f: 1})]}, f"records[0].{f} must be a string", id=f"int-{f}") for f in FIELDS),
    pytest.param({"records": [record(message=None)]}, "records[0].message must be a string", id="null-message"),
    pytest.param(
        {"records": [without("tags")]}, "records[0].tags is required (null when there are none)", id="no-tags"
    ),
    pytest.param(
        {"records": [record(), record(loglevel="WARN")]},
        "records[1].loglevel 'WARN' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
        id="bad-level",
    ),
    pytest.param({"records": [record(loglevel="info")]}, None, id="lowercase-level"),
    *(
        pytest.param({"records": [record(timestamp=stamp)]}, None, id=f"timestamp-{stamp}")
        for stamp in [
            None,
            1714564800,
            "2024-05-01 12:00:00Z",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00:00-03:00",
            "2024-05-01T12:00:00-00:00",
            "2024-13-01T12:00:00Z",
            "2024-02-30T12:00:00Z",
            "yesterday",
        ]
    ),
]


@pytest.mark.parametrize(("body", "detail"), BAD_LOG_BODIES)
def test_malformed_logs_bodies_are_400_and_store_nothing(
    dev_engine: DevEngine, body: bytes | dict[str, Any], detail: str | None
) -> None:
    payload = json.dumps(body).encode() if isinstance(body, dict) else body

    answer = call(dev_engine, LOGS, payload, headers={"Content-Type": "application/json"})

    assert answer.status == 400
    assert isinstance(answer.json["detail"], str)
    if detail is not None:
        assert answer.json == {"detail": detail}
    assert dev_engine.records == []


@pytest.mark.parametrize(
    "stamp",
    [
        "2024-05-01T12:00:00Z",
        "2024-05-01T12:00:00.1Z",
        "2024-05-01t12:00:00.123456789z",
        "2024-05-01T12:00:00+00:00",
    ],
)
def test_rfc3339_utc_timestamps_are_accepted(dev_engine: DevEngine, stamp: str) -> None:
    assert call(dev_engine, LOGS, {"records": [record(timestamp=stamp)]}).status == 201


@pytest.mark.parametrize(
    "stamp",
    [
        "2024-05-01T12:00:00.00000xZ",
        "2024-05-01T12:00:00.\u00b2\u00b2\u00b2\u00b2\u00b2\u00b2Z",
        "2024-05-01T12:00:00.1234567",
    ],
)
def test_a_timestamp_in_a_second_already_seen_is_still_checked_whole(dev_engine: DevEngine, stamp: str) -> None:
    seen = call(dev_engine, LOGS, {"records": [record(timestamp="2024-05-01T12:00:00.000001Z")]})

    answer = call(
        dev_engine, LOGS, {"records": [record(timestamp="2024-05-01T12:00:00.000002Z"), record(timestamp=stamp)]}
    )

    assert (seen.status, answer.status) == (201, 400)
    assert answer.json["detail"].startswith("records[1].timestamp must be an RFC 3339 UTC time")


@pytest.mark.parametrize(
    ("form", "detail"),
    [
        (
            "deployment_status=Unknown",
            "deployment_status 'Unknown' is not one of Running, Stopped, Failed, Succeeded, Finished, Initialized",
        ),
        ("deployment_status=running", None),
        ("status=Running", "deployment_status is required"),
        ("", "deployment_status is required"),
        ("deployment_status=Running&deployment_status=Stopped", "deployment_status given more than once"),
    ],
)
def test_malformed_status_forms_are_400(dev_engine: DevEngine, form: str, detail: str | None) -> None:
    answer = call(dev_engine, STATUS.format("C1"), form)

    assert answer.status == 400
    if detail is not None:
        assert answer.json == {"detail": detail}
    assert dev_engine.statuses == []


def test_each_endpoint_takes_only_its_own_content_type(dev_engine: DevEngine) -> None:
    status_as_json = call(dev_engine, STATUS.format("C1"), {"deployment_status": "Running"})
    logs_as_form = call(dev_engine, LOGS, "records=x")

    assert status_as_json.status == 415 and logs_as_form.status == 415
    assert "application/x-www-form-urlencoded" in status_as_json.json["detail"]


# -- paths, methods, sizes ------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/v3/logs/write", "/v2/logs/write/", "/v3/logs/", "/", "/v3/engine/component/components//update-status/",
     "/v3/engine/component/components/C1/update-status"],
)  # fmt: skip
def test_other_paths_are_404(dev_engine: DevEngine, path: str) -> None:
    answer = call(dev_engine, path, {"records": [record()]})

    assert (answer.status, answer.json) == (404, {"detail": "Not found."})


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_405_with_allow_post(dev_engine: DevEngine, method: str) -> None:
    answer = call(dev_engine, LOGS, method=method)

    assert answer.status == 405
    assert answer.headers["Allow"] == "POST"
    assert answer.json == {"detail": f'Method "{method}" not allowed.'}


def test_a_body_over_8_mib_is_413_without_being_read(dev_engine: DevEngine) -> None:
    request = (
        f"POST {LOGS} HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n"
    ).encode()

    answer = raw_exchange(dev_engine.port, request)

    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"Connection: close" in answer


def test_answers_keep_the_connection_alive_with_a_content_length(dev_engine: DevEngine) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", dev_engine.port, timeout=5)
    try:
        answers = [
            call(dev_engine, LOGS, {"records": [record()]}, conn=conn),
            call(dev_engine, LOGS, b"bad", headers={"Content-Type": "application/json"}, conn=conn),
            call(dev_engine, "/nowhere/", conn=conn),
            call(dev_engine, STATUS.format("C1"), "deployment_status=Running", conn=conn),
        ]
    finally:
        conn.close()

    assert [a.status for a in answers] == [201, 400, 404, 200]
    assert all(a.headers["Content-Length"] == str(len(a.raw)) for a in answers)
    assert all(a.headers["Content-Type"] == "application/json" for a in answers)
    assert dev_engine.connections == 1
    assert [r.connection for r in dev_engine.requests] == [1, 1, 1, 1]


# -- fault injection ----------------------------------------------------------------------------


def test_fail_next_answers_n_requests_with_the_status_and_retry_after_and_stores_nothing(
    dev_engine: DevEngine,
) -> None:
    dev_engine.fail_next(2, 503, retry_after="3")

    answers = [call(dev_engine, LOGS, {"records": [record(message=str(i))]}) for i in range(3)]

    assert [a.status for a in answers] == [503, 503, 201]
    assert answers[0].headers["Retry-After"] == "3"
    assert answers[0].json["detail"]
    assert [r["message"] for r in dev_engine.records] == ["2"]
    assert [(r.status, r.records) for r in dev_engine.requests] == [(503, 1), (503, 1), (201, 1)]


def test_fail_next_for_one_endpoint_leaves_the_other_alone(dev_engine: DevEngine) -> None:
    dev_engine.fail_next(1, 500, endpoint="status")

    logs = call(dev_engine, LOGS, {"records": [record()]})
    first_status = call(dev_engine, STATUS.format("C1"), "deployment_status=Running")
    second_status = call(dev_engine, STATUS.format("C1"), "deployment_status=Running")

    assert (logs.status, first_status.status, second_status.status) == (201, 500, 200)
    assert "Retry-After" not in first_status.headers


def test_fail_next_comes_before_authentication(dev_engine: DevEngine) -> None:
    dev_engine.fail_next(1, 502)

    assert call(dev_engine, LOGS, {"records": []}, headers={"Authorization": "wrong"}).status == 502


def test_set_delay_delays_every_answer(dev_engine: DevEngine) -> None:
    dev_engine.set_delay(0.3)
    started = time.monotonic()
    call(dev_engine, STATUS.format("C1"), "deployment_status=Running")
    delayed = time.monotonic() - started
    dev_engine.set_delay(0)
    started = time.monotonic()
    call(dev_engine, STATUS.format("C1"), "deployment_status=Running")

    assert delayed >= 0.3
    assert time.monotonic() - started < 0.3


def test_refuse_for_refuses_connections_then_listens_again_on_the_same_port(dev_engine: DevEngine) -> None:
    port = dev_engine.port
    kept = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    call(dev_engine, LOGS, {"records": []}, conn=kept)

    dev_engine.refuse_for(0.5)

    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):  # open connections are cut too
        call(dev_engine, LOGS, {"records": []}, conn=kept)
    kept.close()
    time.sleep(0.8)
    assert dev_engine.port == port
    assert call(dev_engine, LOGS, {"records": [record()]}).status == 201


def test_close_mid_response_sends_half_a_status_line_then_closes_and_stores_nothing(
    dev_engine: DevEngine,
) -> None:
    dev_engine.close_mid_response(1)
    body = json.dumps({"records": [record()]})
    request = (
        f"POST {LOGS} HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()

    assert raw_exchange(dev_engine.port, request) == b"HTTP/1.1 20"
    assert dev_engine.records == []
    assert [(r.status, r.records) for r in dev_engine.requests] == [(0, 1)]
    assert raw_exchange(dev_engine.port, request.replace(b"HTTP/1.1\r\n", b"HTTP/1.0\r\n")).startswith(b"HTTP/1.1 201 ")


def test_reset_faults_cancels_everything_pending(dev_engine: DevEngine) -> None:
    dev_engine.fail_next(5)
    dev_engine.close_mid_response(5)
    dev_engine.set_delay(5)
    dev_engine.reset_faults()

    assert call(dev_engine, LOGS, {"records": []}).status == 201


# -- control over HTTP ------------------------------------------------------------------------


def test_faults_can_be_set_over_http_without_credentials(dev_engine: DevEngine) -> None:
    answer = control(dev_engine, "/_dev/faults", {"fail_next": 1, "status": 429, "retry_after": 2, "endpoint": "logs"})

    assert (answer.status, answer.json) == (200, {"ok": True})
    failed = call(dev_engine, LOGS, {"records": [record()]})
    assert (failed.status, failed.headers["Retry-After"]) == (429, "2")
    assert call(dev_engine, LOGS, {"records": [record()]}).status == 201
    assert dev_engine.requests[0].path == LOGS  # control requests are not logged


def test_close_mid_response_and_delay_over_http(dev_engine: DevEngine) -> None:
    control(dev_engine, "/_dev/faults", {"close_mid_response": 1, "delay": 0.2})

    with pytest.raises(http.client.BadStatusLine):
        call(dev_engine, LOGS, {"records": [record()]})
    started = time.monotonic()
    assert call(dev_engine, LOGS, {"records": [record()]}).status == 201
    assert time.monotonic() - started >= 0.2


def test_refuse_for_over_http_answers_first(dev_engine: DevEngine) -> None:
    assert control(dev_engine, "/_dev/faults", {"refuse_for": 0.5}).status == 200

    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", dev_engine.port), timeout=5)
    assert dev_engine.wait_for(lambda e: _listening(e.port), timeout=5)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.mark.parametrize(
    "spec",
    [
        {"fail_next": -1},
        {"fail_next": "3"},
        {"status": 99},
        {"endpoint": "other"},
        {"delay": True},
        {"surprise": 1},
        [],
    ],
)
def test_invalid_fault_requests_are_400(dev_engine: DevEngine, spec: Any) -> None:
    answer = call(dev_engine, "/_dev/faults", json.dumps(spec).encode())

    assert answer.status == 400 and answer.json["detail"]


def test_received_and_clear_over_http(dev_engine: DevEngine) -> None:
    call(dev_engine, LOGS, {"records": [record()]})
    call(dev_engine, STATUS.format("C1"), "deployment_status=Running")

    received = control(dev_engine, "/_dev/received")
    cleared = control(dev_engine, "/_dev/clear")

    assert received.json["records"] == [record()]
    assert received.json["statuses"] == [["C1", "Running"]]
    assert cleared.status == 200
    assert control(dev_engine, "/_dev/received").json["records"] == []
    assert dev_engine.records == [] and dev_engine.statuses == [] and dev_engine.requests == []


# -- observing --------------------------------------------------------------------------------


def test_wait_for_returns_true_once_the_condition_holds_and_false_on_timeout(dev_engine: DevEngine) -> None:
    sender = threading.Timer(0.2, lambda: call(dev_engine, STATUS.format("C1"), "deployment_status=Running"))
    sender.start()

    assert dev_engine.wait_for(lambda e: e.statuses == [("C1", "Running")], timeout=5)
    assert not dev_engine.wait_for(lambda e: len(e.statuses) > 1, timeout=0.2)
    sender.join()


def test_printed_lines_are_readable_and_records_are_appended_as_json_lines(tmp_path: Path) -> None:
    out = io.StringIO()
    path = tmp_path / "received.jsonl"
    logged = record(
        message="hello\nsecond line", traceback="Traceback (most recent call last):\n  boom\n", tags={"a": 1}
    )
    with DevEngine(out=out, record_path=path) as engine:
        call(engine, LOGS, {"records": [logged]})
        call(engine, STATUS.format("C1"), "deployment_status=Running")

    assert out.getvalue().splitlines() == [
        '[logs] C1 component INFO     main.py    my.logger: hello  tags={"a": 1}',
        "    second line",
        "    Traceback (most recent call last):",
        "      boom",
        "[status] C1 -> Running",
    ]
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [{"kind": "log", **logged}, {"kind": "status", "id": "C1", "status": "Running"}]


def test_every_record_of_a_request_is_one_line_of_kind_log_on_file_before_the_answer(tmp_path: Path) -> None:
    path = tmp_path / "received.jsonl"
    sent = [record(message=f"m{i}") for i in range(3)] + [record(message="own kind", kind="status")]
    with DevEngine(record_path=path) as engine:
        answer = call(engine, LOGS, {"records": sent})
        on_file = path.read_text()  # read before the engine stops: written and flushed when answered

    assert answer.status == 201
    lines = [json.loads(line) for line in on_file.splitlines()]
    assert lines == [{**r, "kind": "log"} for r in sent]
    assert [next(iter(line)) for line in lines] == ["kind"] * 4


def test_nothing_is_printed_without_out(dev_engine: DevEngine, capsys: pytest.CaptureFixture[str]) -> None:
    call(dev_engine, LOGS, {"records": [record()]})

    assert capsys.readouterr() == ("", "")


def test_stop_is_idempotent_and_frees_the_port() -> None:
    engine = DevEngine().start()
    port = engine.port
    engine.stop()
    engine.stop()

    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


# -- the foreground command -------------------------------------------------------------------


def _start_run(port: int, *extra: str) -> subprocess.Popen[str]:
    code = (
        "import sys; from splight_runner.dev_engine.server import run; "
        f"sys.exit(run('127.0.0.1', {port}, access_id='dev-access', secret_key='dev-secret', "
        f"api_version='v3', record_path=None, quiet={'--quiet' in extra}))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_prints_what_arrives_and_exits_0_on_a_stop_signal(signum: int) -> None:
    port = free_port()
    process = _start_run(port)
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == f"dev-engine listening on http://127.0.0.1:{port} (access id dev-access)\n"
        header = process.stdout.readline()
        assert header.startswith("columns: [logs] ID SENDER_TYPE LOGLEVEL FILENAME LOGGER: MESSAGE"), header
        call(SimpleNamespace(port=port), STATUS.format("C1"), "deployment_status=Running")
        assert process.stdout.readline() == "[status] C1 -> Running\n"
        process.send_signal(signum)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        _, err = process.communicate()
    assert err == ""


def test_run_says_in_one_line_when_the_port_is_taken_and_exits_2() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        process = _start_run(taken.getsockname()[1])
        out, err = process.communicate(timeout=20)

    assert process.returncode == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("dev-engine: cannot listen on 127.0.0.1:")
