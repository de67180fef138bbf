"""A tiny OTLP/HTTP receiver that answers 200 to everything and keeps only counts.

Why not a collector: the emit benchmark needs an OTLP endpoint that is never
the bottleneck and never pushes back, so what is measured is the component's
side of ``OTEL_LOGS_EXPORTER=splight,otlp``. An empty body is a valid
(empty) ``Export*ServiceResponse`` in protobuf, so nothing needs decoding.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class OtlpSink:
    """``with OtlpSink() as sink:`` serves on 127.0.0.1 (free port), ``sink.endpoint`` is its base URL."""

    def __init__(self) -> None:
        self.requests: dict[str, int] = {}
        self.bytes = 0
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                with sink._lock:
                    sink.requests[self.path] = sink.requests.get(self.path, 0) + 1
                    sink.bytes += length
                # One write: status line, headers and (empty) body together, no Nagle/delayed-ACK stall.
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="bench-otlp-sink", daemon=True)

    def __enter__(self) -> OtlpSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
