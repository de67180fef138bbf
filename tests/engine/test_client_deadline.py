"""EngineClient: one deadline bounds a whole call, and a reused descriptor is never written to.

A hand-made server on 127.0.0.1 that answers one byte every 0.5 s (each read
gets a byte well within any per-read timeout, so only a whole-call bound can
stop it), and a real dev-engine whose connection's descriptor number the test
takes away from the client with ``dup2``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from splight_runner.dev_engine.server import DevEngine
from splight_runner.engine.client import EngineClient, EngineError, pack_records
from splight_runner.settings import EngineSettings
from support import engine_record

ANSWER = b'HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{"accepted": 1}'


def settings_for(url: str) -> EngineSettings:
    return EngineSettings(host=url, api_version="v3", access_id="dev-access", secret_key="dev-secret")


pytestmark = pytest.mark.usefixtures("direct_to_the_engine")


@contextlib.contextmanager
def dripping_server(interval: float = 0.5) -> Iterator[str]:
    """Reads a request's headers, then answers it one byte every ``interval`` seconds."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data and not stop.is_set():
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            for byte in ANSWER:
                if stop.wait(interval):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()


def body() -> bytes:
    [(encoded, _)] = pack_records([engine_record()])
    return encoded


def test_a_dripping_server_cannot_hold_a_call_past_its_deadline() -> None:
    with dripping_server() as url, EngineClient(settings_for(url), timeout=10.0) as client:
        started = time.monotonic()
        with pytest.raises(EngineError) as raised:
            client.write_logs(body(), deadline=started + 1.5)
        elapsed = time.monotonic() - started
    assert 1.4 <= elapsed < 2.0, elapsed
    assert raised.value.retryable and raised.value.status is None
    assert "deadline" in str(raised.value)


def test_a_call_in_progress_can_be_cut_sooner_from_another_thread() -> None:
    """An exit deadline brought forward (a stop signal) ends the call already waiting on the Engine."""
    with dripping_server() as url, EngineClient(settings_for(url), timeout=10.0) as client:
        outcome: list[BaseException] = []

        def call() -> None:
            try:
                client.write_logs(body(), deadline=time.monotonic() + 8)
            except EngineError as error:
                outcome.append(error)

        caller = threading.Thread(target=call)
        started = time.monotonic()
        caller.start()
        time.sleep(0.5)
        client.cut_at(time.monotonic() + 0.3)
        client.cut_at(time.monotonic() + 5)  # a later time never pushes the cut back
        caller.join(10)
        elapsed = time.monotonic() - started
    assert 0.7 <= elapsed < 1.5, elapsed
    assert len(outcome) == 1 and outcome[0].retryable


def test_the_timeout_bounds_the_whole_call_not_each_read() -> None:
    with dripping_server() as url, EngineClient(settings_for(url), timeout=1.0) as client:
        started = time.monotonic()
        with pytest.raises(EngineError) as raised:
            client.update_status("C1", "Running")
        elapsed = time.monotonic() - started
    assert elapsed < 1.5, elapsed
    assert "within 1s" in str(raised.value)


def test_a_deadline_already_passed_sends_nothing(dev_engine: DevEngine) -> None:
    with EngineClient(settings_for(dev_engine.url)) as client:
        with pytest.raises(EngineError) as raised:
            client.write_logs(body(), deadline=time.monotonic() - 1)
        assert raised.value.retryable
        client.write_logs(body(), deadline=time.monotonic() + 5)
    assert len(dev_engine.requests) == 1


def test_a_descriptor_taken_over_by_the_process_is_never_written_to(dev_engine: DevEngine) -> None:
    with EngineClient(settings_for(dev_engine.url)) as client:
        client.write_logs(body())
        fd = client._conn.sock.fileno()  # the keep-alive connection the next call would reuse
        mine, other_end = socket.socketpair()
        with mine, other_end:
            os.dup2(mine.fileno(), fd)  # as closerange + a new socket, or dup2, would leave it
            client.write_logs(body())
            other_end.setblocking(False)
            with pytest.raises(BlockingIOError):
                other_end.recv(65536)  # not one byte arrived on the process's own socket
            client.close()
            mine.sendall(b"ping")  # and the descriptor was not closed by the client either
            assert os.read(fd, 0) == b""  # still open
            other_end.setblocking(True)
            assert other_end.recv(4) == b"ping"
        os.close(fd)
    assert len(dev_engine.records) == 2
