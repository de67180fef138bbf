"""The one HTTP server base the dev-engine and the gateway share (stdlib ``http.server``)."""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer


class ThreadedHTTPServer(ThreadingHTTPServer):
    """A thread per connection, IPv6 literals accepted, and no reverse DNS at bind time."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
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

    def prepare_connection(self) -> None:
        """Work on the raw socket before the streams are made (e.g. a TLS handshake)."""

    def connection_opened(self) -> None:
        pass

    def connection_closed(self) -> None:
        pass

    def log_message(self, format: str, *args: object) -> None:
        pass  # each server reports what matters itself, one readable line each
