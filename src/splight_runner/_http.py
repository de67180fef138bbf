"""The one HTTP server base the dev-engine and the gateway share (stdlib ``http.server``).

What both servers need and neither should write again: the threaded server with
a back-reference to the object that answers (:attr:`ThreadedHTTPServer.owner`),
the keep-alive handler that tracks its connection and sends an :class:`Answer`
in one write, the open connections cut at stop (:class:`OpenConnections`), the
URL of a host that may be an IPv6 literal (:func:`http_url`), and the foreground
loop of a command that serves until SIGINT or SIGTERM (:func:`wait_for_stop_signal`).
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any


def http_url(scheme: str, host: str, port: int) -> str:
    """``scheme://host:port``, an IPv6 literal host in brackets."""
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}"


@dataclass
class Answer:
    """One HTTP answer: status, body and how to send it (``close``: end the connection after it)."""

    status: int
    body: bytes = b""
    content_type: str = "application/octet-stream"
    headers: dict[str, str] | None = None
    close: bool = False


class OpenConnections:
    """The connections a server has open, numbered as they arrive, so a stop can cut them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        #: Connections accepted so far.
        self.count = 0

    def opened(self, sock: socket.socket) -> int:
        """Track ``sock``; returns its number (1 for the first connection)."""
        with self._lock:
            self.count += 1
            self._open.add(sock)
            return self.count

    def closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)

    def cut(self, spare: socket.socket | None = None) -> None:
        """Shut down every open connection except ``spare`` (its handler thread then ends)."""
        with self._lock:
            open_sockets = [sock for sock in self._open if sock is not spare]
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def wait_for_stop_signal(tick: Callable[[], None] | None = None, interval: float = 0.5) -> None:
    """Block until SIGINT or SIGTERM, calling ``tick`` every ``interval`` seconds.

    The handlers are installed only from the main thread (elsewhere nothing can
    install them) and the previous ones are put back before returning.
    """
    stop = threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    try:
        while not stop.wait(interval):
            if tick is not None:
                tick()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class ThreadedHTTPServer(ThreadingHTTPServer):
    """A thread per connection, IPv6 literals accepted, and no reverse DNS at bind time.

    ``owner`` is the object the handlers answer for (the gateway, the dev-engine).
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], owner: Any = None) -> None:
        self.owner = owner
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def serve_in_background(self, name: str, poll_interval: float) -> threading.Thread:
        """Serve on a started daemon thread (the dev-engine and the gateway both run this way)."""
        thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": poll_interval}, name=name, daemon=True
        )
        thread.start()
        return thread

    def stop_background(self, thread: threading.Thread | None) -> None:
        """Undo :meth:`serve_in_background`: stop the loop, close the listening socket, wait for the thread."""
        self.shutdown()
        self.server_close()
        if thread is not None:
            thread.join()

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn), which can
        # hang for seconds without DNS; the name is not needed.
        TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])


class ConnectionHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler that tells its server when each connection opens and closes."""

    protocol_version = "HTTP/1.1"
    sys_version = ""

    def setup(self) -> None:
        # Headers and body may go out in separate writes: without this, Nagle's algorithm
        # holds the second one for the peer's delayed ACK (~40 ms per answer on Linux).
        with contextlib.suppress(OSError):
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connection_opened()
        try:
            self.prepare_connection()
            super().setup()
        except BaseException:
            self.connection_closed()  # finish() is not called when setup fails
            raise

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.connection_closed()

    def send_answer(self, answer: Answer) -> None:
        """Status line, headers and body in one write (never split across a delayed ACK); no body for HEAD."""
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            for name, value in (answer.headers or {}).items():
                self.send_header(name, value)
            if answer.close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self._headers_buffer.append(b"\r\n")
            if self.command != "HEAD":
                self._headers_buffer.append(answer.body)
            self.flush_headers()
        except OSError:
            self.close_connection = True

    def prepare_connection(self) -> None:
        """Work on the raw socket before the streams are made (e.g. a TLS handshake)."""

    def connection_opened(self) -> None:
        pass

    def connection_closed(self) -> None:
        pass

    def log_message(self, format: str, *args: object) -> None:
        pass  # each server reports what matters itself, one readable line each
