"""The Engine client's HTTP/1.1: every answer shape a server may send, read over real sockets on 127.0.0.1.

A server here reads each request whole and answers with the bytes a test scripts (sent in
pieces when asked), so the shapes a well-behaved DevEngine never sends are covered: chunked
bodies, interim 1xx answers, HTTP/1.0, answers read to the close, and answers that break
the limits or the connection.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from splight_runner.engine import http11
from splight_runner.engine.client import EngineClient, EngineError
from splight_runner.engine.proxies import bypassed, environment_proxies
from splight_runner.settings import EngineSettings
from support import CREATED, ScriptedServer

pytestmark = pytest.mark.usefixtures("direct_to_the_engine")


@pytest.fixture
def serve() -> Iterator[object]:
    servers: list[ScriptedServer] = []

    def start(*answers: bytes | list[bytes] | str) -> tuple[ScriptedServer, EngineClient]:
        server = ScriptedServer(list(answers))
        servers.append(server)
        return server, EngineClient(EngineSettings(server.url, "v3", "dev-access", "dev-secret"), timeout=5)

    yield start
    for server in servers:
        server.close()


def _error(call: object) -> EngineError:
    with pytest.raises(EngineError) as caught:
        call()  # type: ignore[operator]
    return caught.value


def test_a_chunked_answer_is_read_whole_extensions_and_trailers_included(serve) -> None:  # type: ignore[no-untyped-def]
    server, client = serve(
        b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
        b'7;note=x\r\n{"detai\r\n'
        b'11\r\nl": "bad record"}\r\n'
        b"0\r\nX-Trailer: yes\r\n\r\n",
    )
    error = _error(lambda: client.update_status("C1", "Running"))
    assert (error.status, error.detail, error.retryable) == (400, "bad record", False)
    client.update_status("C1", "Running")  # the connection was left clean: it carries the next call
    assert (server.requests, server.connections) == (2, 1)


def test_interim_answers_are_skipped_and_pieces_of_any_size_are_joined(serve) -> None:  # type: ignore[no-untyped-def]
    answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}"
    server, client = serve([answer[i : i + 1] for i in range(len(answer))])
    client.write_logs(b'{"records":[]}')
    assert server.requests == 1


def test_an_http_1_0_answer_closes_the_connection_and_the_next_call_opens_a_new_one(serve) -> None:  # type: ignore[no-untyped-def]
    server, client = serve(b"HTTP/1.0 201 Created\r\nContent-Length: 0\r\n\r\n", "close")
    client.update_status("C1", "Running")
    client.update_status("C1", "Running")
    assert (server.requests, server.connections) == (2, 2)


def test_an_answer_without_a_length_is_read_until_the_server_closes(serve) -> None:  # type: ignore[no-untyped-def]
    _, client = serve(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\n\r\nbusy, come back", "close")
    error = _error(lambda: client.update_status("C1", "Running"))
    assert (error.status, error.detail, error.retry_after) == (503, "busy, come back", 7.0)


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 201 Created\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", "more than 100 headers"),
        (b"HTTP/1.1 201 Created\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n", "answer line too long"),
        (b"HTTP/1.1 201 Created\r\nContent-Length: 100000000\r\n\r\n", "answer body too large"),
        (b"HTTP/1.1 201 Created\r\nContent-Length: ten\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        (b"HTTP/1.1 201 Created\r\nno colon here\r\n\r\n", "malformed header line"),
    ],
)
def test_a_malformed_or_oversized_answer_is_a_retryable_error_and_the_connection_is_not_reused(
    serve,  # type: ignore[no-untyped-def]
    answer: bytes,
    why: str,
) -> None:
    server, client = serve(answer)
    error = _error(lambda: client.update_status("C1", "Running"))
    assert (error.status, error.retryable) == (None, True)
    assert "malformed answer" in str(error) and why in str(error)
    client.update_status("C1", "Running")
    assert server.connections == 2


def test_a_connection_lost_in_the_middle_of_an_answer_is_never_sent_again(serve) -> None:  # type: ignore[no-untyped-def]
    # The server had the request (it began to answer): sending it again could store it twice.
    server, client = serve([b"HTTP/1.1 201 Created\r\n", b"Content-Length: 10\r\n\r\n{"], "reset")
    client_error = _error(lambda: client.write_logs(b'{"records":[]}'))
    assert client_error.status is None and "in the middle of its answer" in str(client_error)
    assert server.requests == 1


def test_bytes_after_an_answer_leave_the_connection_unused(serve) -> None:  # type: ignore[no-untyped-def]
    server, client = serve(CREATED + b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    client.update_status("C1", "Running")
    client.update_status("C1", "Running")
    assert server.connections == 2


def test_folded_and_repeated_headers_are_joined() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    try:
        conn = http11.Connection("127.0.0.1", server.getsockname()[1], timeout=5)
        conn.connect()
        peer, _ = server.accept()
        with peer:
            conn.request("POST", "/x", b"", {"Content-Length": "0"})
            assert peer.recv(65536).startswith(b"POST /x HTTP/1.1\r\nHost: 127.0.0.1:")
            peer.sendall(b"HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nX-B: 1\r\nx-b: 2\r\nContent-Length: 0\r\n\r\n")
            answer = conn.getresponse()
        conn.close()
    finally:
        server.close()
    assert (answer.status, answer.reason, answer.will_close) == (200, "OK", False)
    assert (answer.getheader("x-a"), answer.getheader("X-B")) == ("one two", "1, 2")


# -- proxies from the environment -------------------------------------------------------------


def test_lower_case_proxy_variables_win_and_an_empty_one_turns_the_proxy_off() -> None:
    assert environment_proxies({"HTTPS_PROXY": "upper:1", "https_proxy": "lower:2"}) == {"https": "lower:2"}
    assert environment_proxies({"HTTPS_PROXY": "upper:1", "https_proxy": ""}) == {}
    assert environment_proxies({"NO_PROXY": "a.com", "HTTP_PROXY": "p:3"}) == {"no": "a.com", "http": "p:3"}


def test_a_cgi_script_ignores_an_upper_case_http_proxy() -> None:
    proxies = environment_proxies({"REQUEST_METHOD": "GET", "HTTP_PROXY": "evil:1", "HTTPS_PROXY": "p:2"})
    assert proxies == {"https": "p:2"}
    assert environment_proxies({"REQUEST_METHOD": "GET", "http_proxy": "ok:1"}) == {"http": "ok:1"}


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "expected"),
    [
        ("*", "api.splight.com", 443, True),
        ("splight.com", "api.splight.com", 443, True),
        (".splight.com", "api.splight.com", 443, True),
        ("splight.com", "splight.com", 443, True),
        ("splight.com", "notsplight.com", 443, False),
        (" other.org , API.Splight.com ", "api.splight.com", 443, True),
        ("api.splight.com:8443", "api.splight.com", 8443, True),
        ("api.splight.com:8443", "api.splight.com", 443, False),
        ("", "api.splight.com", 443, False),
    ],
)
def test_no_proxy_names_hosts_and_domain_suffixes(no_proxy: str, host: str, port: int, expected: bool) -> None:
    assert bypassed(host, port, {"no": no_proxy}) is expected
