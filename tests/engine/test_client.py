"""EngineClient, EngineError, pack_records and retry_delay, against a real DevEngine over HTTP."""

from __future__ import annotations

import base64
import contextlib
import email.utils
import json
import os
import pickle
import shutil
import socket
import ssl
import subprocess
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from splight_runner import __version__
from splight_runner.dev_engine.server import DevEngine
from splight_runner.engine.client import (
    MAX_RETRY_AFTER,
    EngineClient,
    EngineError,
    pack_records,
    parse_retry_after,
    retry_delay,
)
from splight_runner.settings import EngineSettings
from support import CREATED, ScriptedServer
from support import engine_record as record

SECRET = "dev-secret"


pytestmark = pytest.mark.usefixtures("direct_to_the_engine")


def settings_for(url: str, *, secret_key: str = SECRET, api_version: str = "v3") -> EngineSettings:
    return EngineSettings(host=url, api_version=api_version, access_id="dev-access", secret_key=secret_key)


@pytest.fixture
def client(dev_engine: DevEngine) -> Iterator[EngineClient]:
    with EngineClient(settings_for(dev_engine.url), timeout=5.0) as engine_client:
        yield engine_client


def body_of(*records: dict[str, Any]) -> bytes:
    [(body, _)] = pack_records(list(records))
    return body


def raised_by(call: Any) -> EngineError:
    with pytest.raises(EngineError) as caught:
        call()
    return caught.value


# -- the two calls ---------------------------------------------------------------


def test_write_logs_delivers_the_body_exactly_as_json(client: EngineClient, dev_engine: DevEngine) -> None:
    records = [record(message="one", tags={"k": "v"}), record(message="two", loglevel="ERROR")]
    body = body_of(*records)

    client.write_logs(body)

    assert dev_engine.records == records
    [request] = dev_engine.requests
    assert (request.method, request.path, request.status) == ("POST", "/v3/logs/write/", 201)
    assert request.body == body
    assert request.content_type == "application/json"
    assert request.records == 2


def test_update_status_sends_a_urlencoded_form_to_the_process_status_path(
    client: EngineClient, dev_engine: DevEngine
) -> None:
    client.update_status("C1", "Running")

    assert dev_engine.statuses == [("C1", "Running")]
    [request] = dev_engine.requests
    assert request.path == "/v3/engine/component/components/C1/update-status/"
    assert request.body == b"deployment_status=Running"
    assert request.content_type == "application/x-www-form-urlencoded"
    assert request.status == 200


def test_the_process_id_is_percent_encoded_in_the_path(client: EngineClient, dev_engine: DevEngine) -> None:
    client.update_status("comp#1?x", "Stopped")

    assert dev_engine.statuses == [("comp#1?x", "Stopped")]
    assert dev_engine.requests[0].path == "/v3/engine/component/components/comp%231%3Fx/update-status/"


def test_a_path_prefix_in_the_host_is_kept() -> None:
    with DevEngine(api_version="prefix/v3") as engine:
        with EngineClient(settings_for(engine.url + "/prefix")) as prefixed:
            prefixed.write_logs(body_of(record()))
            prefixed.update_status("C1", "Running")
        assert [r.path for r in engine.requests] == [
            "/prefix/v3/logs/write/",
            "/prefix/v3/engine/component/components/C1/update-status/",
        ]


def test_requests_carry_the_runner_user_agent() -> None:
    seen: list[str | None] = []
    server = socket.create_server(("127.0.0.1", 0))

    def answer_once() -> None:
        conn, _ = server.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head = data.split(b"\r\n\r\n")[0].decode()
            headers = dict(line.split(": ", 1) for line in head.split("\r\n")[1:])
            seen.append(headers.get("User-Agent"))
            conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=answer_once)
    thread.start()
    with server, EngineClient(settings_for(f"http://127.0.0.1:{server.getsockname()[1]}")) as plain:
        plain.write_logs(body_of(record()))
    thread.join()
    assert seen == [f"splight-runner/{__version__}"]


# -- answers that are not 2xx ----------------------------------------------------------


def test_a_wrong_secret_is_401_not_retryable_and_the_secret_never_appears_in_the_error(
    dev_engine: DevEngine,
) -> None:
    wrong = "wrong-secret-do-not-print"
    with EngineClient(settings_for(dev_engine.url, secret_key=wrong)) as bad:
        error = raised_by(lambda: bad.write_logs(body_of(record())))

    assert error.status == 401
    assert error.retryable is False
    assert str(error) == "401 Unauthorized: Invalid credentials."
    rendered = [str(error), repr(error), error.detail, *map(str, error.args)]
    rendered.append("".join(traceback.format_exception(error)))
    assert all(wrong not in text for text in rendered)
    assert dev_engine.records == []


def test_a_secret_echoed_back_by_the_engine_is_scrubbed_from_the_detail(
    client: EngineClient, dev_engine: DevEngine
) -> None:
    # The DevEngine quotes an invalid loglevel in its answer: here that is the secret.
    error = raised_by(lambda: client.write_logs(body_of(record(loglevel=SECRET))))

    assert error.status == 400
    assert "loglevel" in error.detail
    assert SECRET not in str(error) and SECRET not in repr(error)


def test_a_malformed_body_is_400_not_retryable_with_the_engines_detail(client: EngineClient) -> None:
    error = raised_by(lambda: client.write_logs(b'{"records": "nope"}'))

    assert error.status == 400
    assert error.retryable is False
    assert error.detail == "'records' must be a list"
    assert str(error) == "400 Bad Request: 'records' must be a list"


def test_unknown_status_is_rejected_by_the_engine(client: EngineClient, dev_engine: DevEngine) -> None:
    error = raised_by(lambda: client.update_status("C1", "Unknown"))

    assert (error.status, error.retryable) == (400, False)
    assert dev_engine.statuses == []


def test_503_with_retry_after_seconds_is_retryable_and_carries_the_delay(
    client: EngineClient, dev_engine: DevEngine
) -> None:
    dev_engine.fail_next(1, 503, retry_after="7")

    error = raised_by(lambda: client.write_logs(body_of(record())))

    assert (error.status, error.retryable, error.retry_after) == (503, True, 7.0)
    assert str(error).startswith("503 Service Unavailable: ")
    assert dev_engine.records == []
    client.write_logs(body_of(record()))  # the failure was for one request only
    assert len(dev_engine.records) == 1


def test_retry_after_as_an_http_date_becomes_seconds_from_now(client: EngineClient, dev_engine: DevEngine) -> None:
    dev_engine.fail_next(1, 429, retry_after=email.utils.formatdate(time.time() + 30, usegmt=True))

    error = raised_by(lambda: client.update_status("C1", "Running"))

    assert (error.status, error.retryable) == (429, True)
    assert error.retry_after is not None and 27 <= error.retry_after <= 30


def test_a_missing_or_unreadable_retry_after_is_none(client: EngineClient, dev_engine: DevEngine) -> None:
    dev_engine.fail_next(1, 503)
    dev_engine.fail_next(1, 503, retry_after="soon")

    assert raised_by(lambda: client.update_status("C1", "Running")).retry_after is None
    assert raised_by(lambda: client.update_status("C1", "Running")).retry_after is None


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_these_statuses_are_retryable(client: EngineClient, dev_engine: DevEngine, status: int) -> None:
    dev_engine.fail_next(1, status)

    error = raised_by(lambda: client.write_logs(body_of(record())))

    assert (error.status, error.retryable) == (status, True)


@pytest.mark.parametrize("status", [301, 302, 400, 403, 404, 409, 413, 415, 422, 501, 505])
def test_other_statuses_are_not_retryable_and_redirects_are_not_followed(
    client: EngineClient, dev_engine: DevEngine, status: int
) -> None:
    dev_engine.fail_next(1, status)

    error = raised_by(lambda: client.write_logs(body_of(record())))

    assert (error.status, error.retryable) == (status, False)
    assert len(dev_engine.requests) == 1


def test_an_unknown_path_is_404_and_not_retryable(dev_engine: DevEngine) -> None:
    with EngineClient(settings_for(dev_engine.url, api_version="v9")) as wrong_version:
        error = raised_by(lambda: wrong_version.update_status("C1", "Running"))

    assert (error.status, error.retryable, error.detail) == (404, False, "Not found.")


# -- no answer at all ------------------------------------------------------------------


def test_a_refused_connection_is_retryable_with_no_status(client: EngineClient, dev_engine: DevEngine) -> None:
    client.update_status("C1", "Running")  # an open keep-alive connection, cut by the outage
    dev_engine.refuse_for(0.5)

    error = raised_by(lambda: client.update_status("C1", "Stopped"))

    assert (error.status, error.retryable, error.retry_after) == (None, True, None)
    assert str(error) == f"connection refused by 127.0.0.1:{dev_engine.port}"
    assert dev_engine.wait_for(lambda e: _answers(e.url), timeout=5)
    client.update_status("C1", "Stopped")  # the same client reconnects once the Engine is back
    assert dev_engine.statuses == [("C1", "Running"), ("C1", "Stopped")]


def _answers(url: str) -> bool:
    try:
        with EngineClient(settings_for(url), timeout=1.0) as probe:
            probe.write_logs(b'{"records":[]}')
    except EngineError:
        return False
    return True


def test_no_answer_within_the_timeout_is_retryable_with_no_status(dev_engine: DevEngine) -> None:
    dev_engine.set_delay(1.0)
    started = time.monotonic()
    with EngineClient(settings_for(dev_engine.url), timeout=0.2) as impatient:
        error = raised_by(lambda: impatient.update_status("C1", "Running"))

    assert time.monotonic() - started < 0.9
    assert (error.status, error.retryable) == (None, True)
    assert "within 0.2s" in str(error)


def test_a_connection_cut_mid_answer_is_retryable_and_nothing_is_stored(
    client: EngineClient, dev_engine: DevEngine
) -> None:
    dev_engine.close_mid_response(1)

    error = raised_by(lambda: client.write_logs(body_of(record())))

    assert (error.status, error.retryable) == (None, True)
    assert dev_engine.records == []
    client.write_logs(body_of(record()))  # and the next call reconnects
    assert len(dev_engine.records) == 1
    assert [r.connection for r in dev_engine.requests] == [1, 2]


# -- the connection ----------------------------------------------------------------------


def test_one_keep_alive_connection_carries_many_calls(client: EngineClient, dev_engine: DevEngine) -> None:
    for _ in range(5):
        client.write_logs(body_of(record()))
        client.update_status("C1", "Running")

    assert len(dev_engine.requests) == 10
    assert dev_engine.connections == 1


def test_a_connection_the_engine_closed_while_idle_is_replaced_without_an_error() -> None:
    with DevEngine(keepalive_timeout=0.2) as engine, EngineClient(settings_for(engine.url)) as patient:
        patient.update_status("C1", "Running")
        time.sleep(0.5)  # the Engine drops the idle connection
        patient.update_status("C1", "Stopped")

        assert engine.statuses == [("C1", "Running"), ("C1", "Stopped")]
        assert engine.connections == 2


def test_errors_from_the_engine_keep_the_connection(client: EngineClient, dev_engine: DevEngine) -> None:
    dev_engine.fail_next(2, 503)
    for _ in range(2):
        raised_by(lambda: client.update_status("C1", "Running"))
    client.update_status("C1", "Running")

    assert dev_engine.connections == 1


def test_after_fork_the_next_call_opens_a_new_connection(client: EngineClient, dev_engine: DevEngine) -> None:
    client.update_status("C1", "Running")
    client.after_fork()
    client.update_status("C1", "Stopped")

    assert [r.connection for r in dev_engine.requests] == [1, 2]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_uses_its_own_connection_and_the_parent_keeps_its_own(
    client: EngineClient, dev_engine: DevEngine
) -> None:
    client.update_status("C1", "Running")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            client.update_status("C2", "Running")  # no after_fork() call: the client notices
            code = 0
        finally:
            os._exit(code)
    _, wait_status = os.waitpid(pid, 0)
    client.update_status("C1", "Stopped")

    assert os.waitstatus_to_exitcode(wait_status) == 0
    assert dev_engine.statuses == [("C1", "Running"), ("C2", "Running"), ("C1", "Stopped")]
    assert [r.connection for r in dev_engine.requests] == [1, 2, 1]


def test_close_then_call_again_reconnects(client: EngineClient, dev_engine: DevEngine) -> None:
    client.update_status("C1", "Running")
    client.close()
    client.update_status("C1", "Stopped")

    assert dev_engine.connections == 2


def test_a_reused_connection_closed_before_any_answer_is_retried_once_on_a_new_one() -> None:
    server = ScriptedServer([CREATED, "drop", CREATED])
    try:
        with EngineClient(settings_for(server.url)) as engine_client:
            engine_client.update_status("C1", "Running")
            engine_client.update_status("C1", "Stopped")  # dropped on the reused connection, then sent again
    finally:
        server.close()

    assert (server.requests, server.connections) == (3, 2)


def test_a_new_connection_closed_before_any_answer_is_an_error_not_a_retry() -> None:
    server = ScriptedServer(["drop", CREATED])
    try:
        with EngineClient(settings_for(server.url)) as engine_client:
            error = raised_by(lambda: engine_client.update_status("C1", "Running"))
    finally:
        server.close()

    assert (error.status, error.retryable) == (None, True)
    assert "closed the connection without answering" in str(error)
    assert server.requests == 1


# -- HTTPS and proxies ------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_engine(certificate: tuple[Path, Path]) -> Iterator[DevEngine]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    with DevEngine(ssl_context=context) as engine:
        yield engine


def test_https_hosts_are_reached_over_verified_tls_with_keep_alive(
    tls_engine: DevEngine, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    with EngineClient(settings_for(tls_engine.url)) as secure:
        secure.write_logs(body_of(record()))
        secure.update_status("C1", "Running")

    assert tls_engine.url.startswith("https://")
    assert len(tls_engine.records) == 1 and tls_engine.statuses == [("C1", "Running")]
    assert tls_engine.connections == 1


def test_an_untrusted_certificate_is_a_retryable_error_and_nothing_is_sent(tls_engine: DevEngine) -> None:
    with EngineClient(settings_for(tls_engine.url)) as secure:
        error = raised_by(lambda: secure.update_status("C1", "Running"))

    assert (error.status, error.retryable) == (None, True)
    assert "TLS certificate" in str(error)
    assert tls_engine.requests == []


class ConnectProxy:
    """A tiny HTTP CONNECT proxy that records what it was asked to tunnel to."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.tunnels: list[tuple[str, dict[str, str]]] = []
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.sockets.append(conn)
            threading.Thread(target=self._tunnel, args=(conn,), daemon=True).start()

    def _tunnel(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += conn.recv(1)
        request, *lines = head.decode().split("\r\n")[:-2]
        method, target, _ = request.split(" ")
        self.tunnels.append((f"{method} {target}", dict(line.split(": ", 1) for line in lines)))
        host, port = target.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        self.sockets.append(upstream)
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        for source, sink in ((conn, upstream), (upstream, conn)):
            threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        for sock in (self.server, *self.sockets):
            sock.close()


def test_http_proxy_from_the_environment_is_used_through_connect_with_its_credentials(
    dev_engine: DevEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = ConnectProxy()
    monkeypatch.setenv("HTTP_PROXY", f"http://user:p%40ss@127.0.0.1:{proxy.port}")
    try:
        with EngineClient(settings_for(dev_engine.url)) as proxied:
            proxied.update_status("C1", "Running")
            proxied.update_status("C1", "Stopped")
    finally:
        proxy.close()

    token = base64.b64encode(b"user:p@ss").decode()
    assert [(line, headers.get("Proxy-Authorization")) for line, headers in proxy.tunnels] == [
        (f"CONNECT 127.0.0.1:{dev_engine.port}", f"Basic {token}")
    ]
    assert all("Authorization" not in headers for _, headers in proxy.tunnels)
    assert dev_engine.statuses == [("C1", "Running"), ("C1", "Stopped")]


def test_no_proxy_sends_directly(dev_engine: DevEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with EngineClient(settings_for(dev_engine.url)) as direct:
        direct.update_status("C1", "Running")

    assert dev_engine.statuses == [("C1", "Running")]


# -- EngineError on its own --------------------------------------------------------------


def test_engine_error_text_is_one_line_and_cut_to_about_200_characters() -> None:
    error = EngineError("line one\nline two " + "x" * 1000, status=500)

    assert "\n" not in str(error)
    assert len(error.detail) <= 200
    assert str(error).startswith("500 Internal Server Error: line one line two xxx")


def test_engine_error_classification_follows_the_status() -> None:
    assert EngineError("connection refused").retryable is True
    assert EngineError("x", status=503).retryable is True
    assert EngineError("x", status=400).retryable is False
    assert str(EngineError("connection refused")) == "connection refused"


def test_engine_error_survives_pickling() -> None:
    error = EngineError("busy", status=503, retry_after=2.0)

    copy = pickle.loads(pickle.dumps(error))

    assert (copy.status, copy.detail, copy.retry_after, copy.retryable) == (503, "busy", 2.0, True)


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("", None), ("3", 3.0), (" 0 ", 0.0), ("1.5", 1.5), ("-1", None), ("soon", None),
     ("nan", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)  # fmt: skip
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


# -- pack_records --------------------------------------------------------------------------


def test_pack_records_makes_compact_utf8_json_keeping_non_ascii() -> None:
    records = [record(message="ñandú 日本語 😀", tags={"sitio": "Córdoba"})]

    [(body, count)] = pack_records(records)

    assert count == 1
    assert body.startswith(b'{"records":[{"sender_type":"component","id":"C1",')
    assert "ñandú 日本語 😀".encode() in body and b"\\u" not in body
    assert json.loads(body) == {"records": records}


def test_pack_records_puts_at_most_1000_records_in_a_body_in_order() -> None:
    records = [record(message=str(i)) for i in range(2500)]

    bodies = pack_records(records)

    assert [count for _, count in bodies] == [1000, 1000, 500]
    assert [r for body, _ in bodies for r in json.loads(body)["records"]] == records


def test_pack_records_keeps_each_body_within_1_mib() -> None:
    records = [record(message=f"{i}:" + "é" * 30_000) for i in range(100)]  # ~60 kB each

    bodies = pack_records(records)

    assert all(len(body) <= 1024 * 1024 for body, _ in bodies)
    assert len(bodies) > 1
    assert all(len(body) > 1024 * 1024 - 70_000 for body, _ in bodies[:-1])  # bodies are filled
    assert [r for body, _ in bodies for r in json.loads(body)["records"]] == records
    assert sum(count for _, count in bodies) == 100


def test_a_record_too_big_alone_gets_its_message_cut_with_a_visible_marker() -> None:
    big = record(message="é" * 800_000, traceback="Traceback (most recent call last): ...")

    [(body, count)] = pack_records([record(message="before"), big, record(message="after")])[1:2]

    assert count == 1 and len(body) <= 1024 * 1024
    [sent] = json.loads(body)["records"]
    kept, marker = sent["message"].split("…[truncated by splight-runner: ")
    assert set(kept) == {"é"} and len(kept) > 400_000
    removed = int(marker.removesuffix(" bytes]"))
    assert len(kept.encode()) + removed == len(big["message"].encode())
    assert {k: v for k, v in sent.items() if k != "message"} == {k: v for k, v in big.items() if k != "message"}


def test_a_huge_traceback_is_cut_without_wiping_out_the_message() -> None:
    big = record(message="m" * 5000, traceback="t" * 3_000_000)

    [(body, _)] = pack_records([big])

    [sent] = json.loads(body)["records"]
    assert len(body) <= 1024 * 1024
    assert sent["message"].startswith("m" * 1024) and "truncated by splight-runner" in sent["message"]
    assert sent["traceback"].startswith("t" * 500_000) and "truncated by splight-runner" in sent["traceback"]


def test_every_record_lands_in_exactly_one_body_even_with_odd_values() -> None:
    odd = [
        record(tags={"when": time.gmtime(0), "ratio": float("nan")}),
        record(tags={(1, 2): "tuple key"}),
        record(message="x" * 50),
    ]

    bodies = pack_records(odd, max_records=2, max_bytes=2048)

    assert [count for _, count in bodies] == [2, 1]
    assert all(json.loads(body) for body, _ in bodies)


def test_pack_records_of_nothing_is_nothing() -> None:
    assert pack_records([]) == []


def test_pack_records_rejects_impossible_limits() -> None:
    with pytest.raises(ValueError):
        pack_records([record()], max_records=0)
    with pytest.raises(ValueError):
        pack_records([record()], max_bytes=10)


# -- retry_delay ---------------------------------------------------------------------------


def test_retry_delay_is_full_jitter_exponential_backoff_up_to_the_cap() -> None:
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (3, 4.0), (6, 30.0), (1000, 30.0)]:
        samples = [retry_delay(attempt) for _ in range(500)]
        assert all(0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.8  # spread over the whole range
        assert min(samples) < ceiling * 0.2


def test_retry_delay_honours_retry_after_never_earlier_and_at_most_five_minutes() -> None:
    assert all(5.0 <= retry_delay(0, 5.0) <= 5.5 for _ in range(200))
    assert all(0.0 <= retry_delay(9, 0.0) <= 0.5 for _ in range(200))
    assert retry_delay(0, 10_000.0) == MAX_RETRY_AFTER == 300.0
