"""``splight-runner gateway``: an OTLP/HTTP logs receiver that makes the Splight Engine calls.

Why it exists: a component can export plain OTLP to an OpenTelemetry Collector
deployed beside it (SPEC.md, way in 3); the collector queues, retries and
persists, and forwards to this gateway, which turns OTLP logs into the
Engine's two calls exactly as the in-process ``splight`` exporter does (same
:mod:`splight_runner.engine.records`, same :func:`~splight_runner.engine.client.pack_records`
limits, same :class:`~splight_runner.engine.client.EngineClient`).

The answer is what keeps data safe, so it follows the OTLP/HTTP specification
strictly: 200 only once the Engine has accepted everything deliverable in the
request; 503 (or 429 when the Engine throttles) with ``Retry-After`` while the
Engine cannot take records, so the collector keeps them queued and retries;
200 with ``partial_success`` for records that can never be delivered (no
``splight.component.id`` resource attribute, or rejected by the Engine with a
non-retryable 4xx), so the collector does not retry them forever; 400 / 413 /
415 / 401 for requests that are wrong in themselves.

No duplicates when the collector retries
-----------------------------------------
A request is delivered as an ordered series of Engine calls (a run of logs as
one or more logs/write POSTs, then a status, then logs ...). If the Engine
accepts the first POSTs and then fails, the gateway answers 503 and the
collector later sends the *same* request again. Two memories make that retry
deliver each record exactly once:

* Every logs/write POST the Engine accepted is remembered by a key: the
  sha256 of the exact body sent, extended with the raw OTLP timestamps
  (``time_unix_nano``, ``observed_time_unix_nano``, nanoseconds) of the
  records in it. The retry translates and packs the same records into the
  same bodies, so an identical key means "already accepted": skipped. The
  timestamps keep two *different* records that read the same in the Engine
  (e.g. a line repeated within one second in a log file, read by filelog at
  two moments) from being taken for a retry. The memory is a bounded LRU
  (``dedup_entries``, default 50,000 POSTs: at up to 1000 records each, far
  more than any collector's retry window holds).
* A status is sent only when it differs from the last status the Engine
  accepted for that component id (SPEC.md: "sent only when the status
  changes"); an already accepted status event (same id, status and
  timestamps) is also remembered in the LRU, so a late retry cannot move a
  component back to an older status.

A key that another request is delivering at that moment (a collector that
timed out and retried while the first attempt is still running) is waited
for rather than sent twice. The memory lives in this process: a gateway killed
between the Engine's acceptance and its own answer can still cause one
duplicate POST after it restarts.

Threads: ``ThreadingHTTPServer`` runs one thread per collector connection.
:class:`EngineClient` is not thread-safe, so each request borrows a client from
a small pool (one client per thread at a time, the Engine keep-alive
connection reused by the next request) rather than a thread-local one, which
would leave one idle Engine connection behind for every collector connection
that ever closed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import math
import signal
import socket
import sys
import threading
import time
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any, NoReturn, TextIO

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from splight_runner import environment as names
from splight_runner import settings as config
from splight_runner._http import ConnectionHandler, ThreadedHTTPServer
from splight_runner.engine import records
from splight_runner.engine.client import MAX_RETRY_AFTER, EngineClient, EngineError, pack_records
from splight_runner.settings import EngineSettings

__all__ = [
    "DEFAULT_LISTEN",
    "DEFAULT_MAX_BODY_BYTES",
    "Gateway",
    "GatewayStats",
    "decode_request",
    "main",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 14318
DEFAULT_LISTEN = f"{DEFAULT_HOST}:{DEFAULT_PORT}"
#: Largest request body, compressed and after decompression.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
#: Bound on each blocking step of an Engine call: a hung Engine must turn into a
#: 503 well before the collector's own timeout (30 s by default) gives up on us.
DEFAULT_ENGINE_TIMEOUT = 10.0
#: No new Engine call is started this long after a request arrived; the rest is
#: answered 503 and comes back with the collector's retry.
DEFAULT_REQUEST_DEADLINE = 20.0
#: ``Retry-After`` (seconds) when the Engine did not say how long to wait.
DEFAULT_RETRY_AFTER = 5
DEFAULT_DEDUP_ENTRIES = 50_000
#: Requests delivering to the Engine at the same time (and so Engine
#: connections); more wait for a slot, at most the request deadline, then get 503.
DEFAULT_MAX_CONCURRENT = 16
#: Idle keep-alive connections are closed after this long.
KEEPALIVE_TIMEOUT = 90.0

LOGS_PATH = "/v1/logs"
HEALTH_PATH = "/healthz"

_PROTOBUF = "application/x-protobuf"
_PROTOBUF_TYPES = frozenset({_PROTOBUF, "application/protobuf"})
_JSON = "application/json"
_GZIP_WBITS = 16 + zlib.MAX_WBITS
#: Only the attributes translation reads are converted from protobuf: the rest
#: (thread ids, code function, anything a user attached) cannot change the Engine
#: record, and converting them would cost most of the per-record time.
_USED_ATTRIBUTES = records.ATTRIBUTES_READ
_MISSING_ID = f"log records without the resource attribute {records.RESOURCE_COMPONENT_ID}"

# gRPC status codes for the google.rpc.Status body of error answers (OTLP/HTTP spec).
_RPC_CODE = {
    400: 3,  # INVALID_ARGUMENT
    401: 16,  # UNAUTHENTICATED
    404: 5,  # NOT_FOUND
    405: 12,  # UNIMPLEMENTED
    411: 3,
    413: 8,  # RESOURCE_EXHAUSTED
    415: 3,
    429: 8,
    500: 13,  # INTERNAL
    503: 14,  # UNAVAILABLE
}


# -- decoding ------------------------------------------------------------------------------


class RequestProblem(Exception):
    """A request that is wrong in itself: answered ``status`` with ``message``, nothing sent."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def inflate(data: bytes, encoding: str, limit: int) -> bytes:
    """Decompress ``data`` (``gzip`` or ``deflate``) without ever producing more than ``limit`` + 1 bytes.

    Asking zlib for at most ``limit + 1`` bytes is what makes a zip bomb
    harmless: the output is cut there and the request refused (413), however
    large the stream would have inflated. A stream that ends before its end
    marker is truncated (400); concatenated gzip members are all read, as
    ``gzip`` readers do.
    """
    wbits = _GZIP_WBITS if encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS
    parts: list[bytes] = []
    size = 0
    pending = data
    while True:
        decompressor = zlib.decompressobj(wbits)
        try:
            try:
                chunk = decompressor.decompress(pending, limit - size + 1)
            except zlib.error:
                if wbits != zlib.MAX_WBITS or parts:
                    raise
                # "deflate" is zlib-wrapped by the HTTP spec, but some clients send raw deflate.
                wbits = -zlib.MAX_WBITS
                decompressor = zlib.decompressobj(wbits)
                chunk = decompressor.decompress(pending, limit - size + 1)
        except zlib.error as error:
            raise RequestProblem(400, f"body is not valid {encoding} data ({error})") from None
        size += len(chunk)
        if size > limit:
            raise RequestProblem(413, f"body larger than {limit} bytes after decompression")
        parts.append(chunk)
        if not decompressor.eof:
            raise RequestProblem(400, f"{encoding} body is truncated")
        pending = decompressor.unused_data
        if not pending or wbits != _GZIP_WBITS:
            if pending:
                raise RequestProblem(400, f"data after the end of the {encoding} stream")
            return b"".join(parts)


def _hex_ids_to_base64(document: Any) -> None:
    """OTLP JSON carries trace and span ids as hex; protobuf JSON expects base64. Convert in place."""
    if not isinstance(document, dict):
        return
    for resource_logs in _items(document, "resourceLogs", "resource_logs"):
        for scope_logs in _items(resource_logs, "scopeLogs", "scope_logs"):
            for record in _items(scope_logs, "logRecords", "log_records"):
                for key in ("traceId", "trace_id", "spanId", "span_id"):
                    value = record.get(key)
                    if isinstance(value, str):
                        try:
                            record[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
                        except ValueError:
                            raise RequestProblem(400, f"{key} {value[:64]!r} is not hex") from None


def _items(parent: Any, *keys: str) -> Iterator[dict[str, Any]]:
    if not isinstance(parent, dict):
        return
    for key in keys:
        value = parent.get(key)
        if isinstance(value, list):
            yield from (item for item in value if isinstance(item, dict))


def decode_request(body: bytes, content_type: str) -> ExportLogsServiceRequest:
    """An ``ExportLogsServiceRequest`` from an OTLP/HTTP body (protobuf or OTLP JSON), or 400."""
    request = ExportLogsServiceRequest()
    if content_type == _JSON:
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            raise RequestProblem(400, "body is not valid JSON") from None
        if not isinstance(document, dict):
            raise RequestProblem(400, "body must be a JSON object (ExportLogsServiceRequest)")
        _hex_ids_to_base64(document)
        try:
            json_format.ParseDict(document, request, ignore_unknown_fields=True)
        except (json_format.ParseError, ValueError, TypeError, RecursionError) as error:
            raise RequestProblem(400, f"not an OTLP JSON ExportLogsServiceRequest: {_short(error)}") from None
        return request
    try:
        request.ParseFromString(body)
    except (DecodeError, ValueError, RecursionError) as error:
        raise RequestProblem(400, f"not a protobuf ExportLogsServiceRequest: {_short(error)}") from None
    return request


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 200 else text[:199] + "…"


# -- translation ---------------------------------------------------------------------------


def _value(any_value: Any) -> Any:
    """An OTLP ``AnyValue`` as the Python value the SDK would hold (``None`` when empty)."""
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":
        return any_value.string_value
    if kind == "kvlist_value":
        return {item.key: _value(item.value) for item in any_value.kvlist_value.values}
    if kind == "array_value":
        return [_value(item) for item in any_value.array_value.values]
    return getattr(any_value, kind)


def _resource_string(value: Any) -> str | None:
    converted = _value(value)
    if converted is None or converted == "":
        return None
    return converted if isinstance(converted, str) else str(converted)


@dataclass
class _Logs:
    """A run of log records between statuses, with their raw timestamps for the dedup key."""

    records: list[dict[str, Any]]
    stamps: list[int]


@dataclass
class _StatusEvent:
    process_id: str
    status: str
    key: bytes


@dataclass
class _Plan:
    """What one request asks the Engine for, in order, and what it cannot deliver."""

    steps: list[_Logs | _StatusEvent]
    records: int
    missing_id: int


def plan_request(request: ExportLogsServiceRequest) -> _Plan:
    """Translate every record once, keeping request order (logs runs split by statuses)."""
    steps: list[_Logs | _StatusEvent] = []
    run: _Logs | None = None
    total = 0
    missing = 0
    engine_record = records.engine_record
    status_of = records.status_of
    used = _USED_ATTRIBUTES
    for resource_logs in request.resource_logs:
        process_id = None
        sender_type = "component"
        for attribute in resource_logs.resource.attributes:
            if attribute.key == records.RESOURCE_COMPONENT_ID:
                process_id = _resource_string(attribute.value)
            elif attribute.key == records.RESOURCE_PROCESS_TYPE:
                sender_type = _resource_string(attribute.value) or "component"
        for scope_logs in resource_logs.scope_logs:
            count = len(scope_logs.log_records)
            total += count
            if process_id is None:
                missing += count
                continue
            scope_name = scope_logs.scope.name or None
            for record in scope_logs.log_records:
                attributes = {item.key: _value(item.value) for item in record.attributes if item.key in used}
                body = _value(record.body)
                time_ns = record.time_unix_nano
                observed_ns = record.observed_time_unix_nano
                status = status_of(record.event_name or None, body, attributes)
                if status is not None:
                    run = None
                    key = hashlib.sha256(f"status\0{process_id}\0{status}\0{time_ns}\0{observed_ns}".encode()).digest()
                    steps.append(_StatusEvent(process_id, status, key))
                    continue
                trace_id = record.trace_id
                span_id = record.span_id
                if run is None:
                    run = _Logs([], [])
                    steps.append(run)
                run.records.append(
                    engine_record(
                        process_id=process_id,
                        sender_type=sender_type,
                        scope_name=scope_name,
                        body=body,
                        severity_number=record.severity_number,
                        severity_text=record.severity_text,
                        attributes=attributes,
                        timestamp_ns=time_ns or observed_ns,
                        trace_id=int.from_bytes(trace_id, "big") if len(trace_id) == 16 else 0,
                        span_id=int.from_bytes(span_id, "big") if len(span_id) == 8 else 0,
                    )
                )
                run.stamps.append(time_ns)
                run.stamps.append(observed_ns)
    return _Plan(steps, total, missing)


# -- delivery memory -----------------------------------------------------------------------


class _Delivered:
    """Keys of Engine calls already accepted (bounded LRU) and of calls in flight right now."""

    def __init__(self, capacity: int) -> None:
        self._capacity = max(1, capacity)
        self._accepted: OrderedDict[bytes, None] = OrderedDict()
        self._in_flight: dict[bytes, threading.Event] = {}
        self._lock = threading.Lock()

    def claim(self, key: bytes, deadline: float) -> bool | None:
        """True: the caller must make the call. False: already accepted. None: still in flight elsewhere."""
        while True:
            with self._lock:
                if key in self._accepted:
                    self._accepted.move_to_end(key)
                    return False
                event = self._in_flight.get(key)
                if event is None:
                    self._in_flight[key] = threading.Event()
                    return True
            if not event.wait(max(0.0, deadline - time.monotonic())):
                return None

    def release(self, key: bytes, accepted: bool) -> None:
        with self._lock:
            event = self._in_flight.pop(key, None)
            if accepted:
                self._remember(key)
        if event is not None:
            event.set()

    def remember(self, key: bytes) -> None:
        with self._lock:
            self._remember(key)

    def _remember(self, key: bytes) -> None:
        self._accepted[key] = None
        self._accepted.move_to_end(key)
        while len(self._accepted) > self._capacity:
            self._accepted.popitem(last=False)

    def __contains__(self, key: bytes) -> bool:
        with self._lock:
            return key in self._accepted

    def __len__(self) -> int:
        with self._lock:
            return len(self._accepted)


class _LastStatus:
    """Last status the Engine accepted per component id, and one lock per id to keep them in order."""

    def __init__(self, capacity: int) -> None:
        self._capacity = max(1, capacity)
        self._status: OrderedDict[str, str] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def lock_for(self, process_id: str) -> threading.Lock:
        with self._lock:
            lock = self._locks.get(process_id)
            if lock is None:
                if len(self._locks) >= self._capacity:
                    self._locks = {k: v for k, v in self._locks.items() if v.locked()}
                lock = self._locks[process_id] = threading.Lock()
            return lock

    def get(self, process_id: str) -> str | None:
        with self._lock:
            return self._status.get(process_id)

    def set(self, process_id: str, status: str) -> None:
        with self._lock:
            self._status[process_id] = status
            self._status.move_to_end(process_id)
            while len(self._status) > self._capacity:
                self._status.popitem(last=False)


class _ClientPool:
    """EngineClients lent to one request at a time (they are not thread-safe), reused for keep-alive."""

    def __init__(self, engine: EngineSettings, timeout: float, keep: int) -> None:
        self._engine = engine
        self._timeout = timeout
        self._keep = keep
        self._idle: list[EngineClient] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextlib.contextmanager
    def client(self) -> Iterator[EngineClient]:
        with self._lock:
            client = self._idle.pop() if self._idle else None
        if client is None:
            client = EngineClient(self._engine, timeout=self._timeout)
        try:
            yield client
        finally:
            with self._lock:
                keep = not self._closed and len(self._idle) < self._keep
                if keep:
                    self._idle.append(client)
            if not keep:
                client.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for client in idle:
            client.close()


# -- stats and voice -----------------------------------------------------------------------


@dataclass
class GatewayStats:
    """Counters since the gateway started (a snapshot; see :attr:`Gateway.stats`)."""

    requests: int = 0
    records_received: int = 0
    records_sent: int = 0
    statuses_sent: int = 0
    records_skipped_as_duplicates: int = 0
    statuses_unchanged: int = 0
    records_rejected: int = 0
    answered_503: int = 0
    answered_429: int = 0
    bad_requests: int = 0

    def line(self) -> str:
        return (
            f"{self.requests} requests, {self.records_received} records in, {self.records_sent} sent, "
            f"{self.statuses_sent} statuses sent, {self.records_skipped_as_duplicates} skipped as already "
            f"delivered, {self.records_rejected} rejected, {self.answered_503 + self.answered_429} "
            f"answered 503/429, {self.bad_requests} bad requests"
        )


#: ``out`` default: whatever ``sys.stderr`` is when a line is written (not at import).
STDERR: Any = object()


class _Voice:
    """One line per problem on ``out``; the same kind of problem at most once per ``quiet`` seconds."""

    def __init__(self, out: TextIO | None, quiet: float = 30.0) -> None:
        self._out = out
        self._quiet = quiet
        self._last: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def say(self, message: str, *, kind: str | None = None) -> None:
        if self._out is None:
            return
        now = time.monotonic()
        with self._lock:
            if kind is not None:
                last, suppressed = self._last.get(kind, (-math.inf, 0))
                if now - last < self._quiet:
                    self._last[kind] = (last, suppressed + 1)
                    return
                self._last[kind] = (now, 0)
                if suppressed:
                    message += f" ({suppressed} more like this since the last report)"
            out = sys.stderr if self._out is STDERR else self._out
            with contextlib.suppress(OSError, ValueError, AttributeError):
                out.write(f"splight-runner gateway: {message}\n")
                out.flush()

    def forget(self, kind: str) -> None:
        with self._lock:
            self._last.pop(kind, None)


# -- the server ----------------------------------------------------------------------------


@dataclass
class _Answer:
    status: int
    body: bytes = b""
    content_type: str = _PROTOBUF
    headers: dict[str, str] | None = None
    close: bool = False


class _Outage(Exception):
    """The Engine cannot take records now: answer 503/429 and let the collector retry."""

    def __init__(self, status: int, retry_after: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.retry_after = retry_after
        self.reason = reason


class _Server(ThreadedHTTPServer):
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], gateway: Gateway) -> None:
        self.gateway = gateway
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Each connection's failure stays with it; a client that vanished is not news.
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, OSError):
            self.gateway._voice.say(f"error serving {client_address[0]}: {_short(error)}", kind="handler-error")


class _Handler(ConnectionHandler):
    server_version = "splight-runner-gateway"
    timeout = KEEPALIVE_TIMEOUT
    server: _Server

    def connection_opened(self) -> None:
        self.server.gateway._opened(self.request)

    def connection_closed(self) -> None:
        self.server.gateway._closed(self.request)

    def __getattr__(self, name: str) -> Any:
        # Every method (also ones http.server does not know) reaches the same
        # dispatcher, so the answer is a 405 rather than http.server's 501.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def _dispatch(self) -> None:
        gateway = self.server.gateway
        try:
            answer = gateway._handle(self)
        except Exception as error:  # a bug must cost one request, never the server
            gateway._voice.say(f"internal error ({type(error).__name__}: {_short(error)})", kind="internal")
            answer = gateway._error(500, "internal error in the gateway", _PROTOBUF, close=True)
        self._send(answer)

    def _send(self, answer: _Answer) -> None:
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            for name, value in (answer.headers or {}).items():
                self.send_header(name, value)
            if answer.close:
                self.send_header("Connection", "close")
                self.close_connection = True
            # Status line, headers and body leave in one write (not end_headers()
            # then a second write), so the answer is never split across a
            # delayed ACK.
            self._headers_buffer.append(b"\r\n")
            if self.command != "HEAD":
                self._headers_buffer.append(answer.body)
            self.flush_headers()
        except OSError:
            self.close_connection = True


class Gateway:
    """The OTLP/HTTP → Engine gateway, served from a background thread.

    ``Gateway(listen=("127.0.0.1", 0), engine=settings).start()`` picks a free
    port (see :attr:`url`); ``stop()`` or the context manager ends it. ``token``,
    when set, is required as ``Authorization: Bearer <token>``.
    """

    def __init__(
        self,
        listen: tuple[str, int] = (DEFAULT_HOST, DEFAULT_PORT),
        engine: EngineSettings | None = None,
        *,
        token: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        engine_timeout: float = DEFAULT_ENGINE_TIMEOUT,
        request_deadline: float = DEFAULT_REQUEST_DEADLINE,
        retry_after: int = DEFAULT_RETRY_AFTER,
        dedup_entries: int = DEFAULT_DEDUP_ENTRIES,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        out: TextIO | None = STDERR,
    ) -> None:
        if engine is None:
            raise ValueError("Gateway needs the Engine settings (settings.engine_settings())")
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be positive")
        self.host, self.port = listen[0], int(listen[1])
        self.engine = engine
        self.max_body_bytes = max_body_bytes
        self.request_deadline = request_deadline
        self.retry_after = max(1, int(retry_after))
        self._token = token.encode("utf-8") if token else None
        self._clients = _ClientPool(engine, engine_timeout, keep=max_concurrent)
        self._delivered = _Delivered(dedup_entries)
        self._last_status = _LastStatus(dedup_entries)
        self._slots = threading.BoundedSemaphore(max(1, max_concurrent))
        self._voice = _Voice(out)
        self._stats = GatewayStats()
        self._stats_lock = threading.Lock()
        self._outage_since: float | None = None
        self._open: set[socket.socket] = set()
        self._active = 0
        self._idle = threading.Condition()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://host:port`` the collector's ``otlphttp`` exporter points at (it appends /v1/logs)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def stats(self) -> GatewayStats:
        with self._stats_lock:
            return GatewayStats(**{f.name: getattr(self._stats, f.name) for f in fields(GatewayStats)})

    def start(self) -> Gateway:
        """Bind (port 0 picks a free one) and serve in a background thread. Raises OSError if it cannot bind."""
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), self)
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = server.serve_in_background(f"splight-gateway:{self.port}", poll_interval=0.1)
        return self

    def stop(self, grace: float = 5.0) -> None:
        """Stop listening, let requests in progress finish for up to ``grace`` s, close every connection."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.stop_background(thread)
        deadline = time.monotonic() + grace
        with self._idle:
            while self._active and time.monotonic() < deadline:
                self._idle.wait(max(0.0, deadline - time.monotonic()))
            open_sockets = list(self._open)
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._clients.close()

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _opened(self, sock: socket.socket) -> None:
        with self._idle:
            self._open.add(sock)

    def _closed(self, sock: socket.socket) -> None:
        with self._idle:
            self._open.discard(sock)

    def _count(self, **increments: int) -> None:
        with self._stats_lock:
            for name, value in increments.items():
                setattr(self._stats, name, getattr(self._stats, name) + value)

    # -- one request ---------------------------------------------------------------------

    def _handle(self, handler: _Handler) -> _Answer:
        path = handler.path.split("?", 1)[0]
        reply_type = _reply_type(handler.headers.get("Content-Type"))
        if path == HEALTH_PATH:
            if handler.command not in ("GET", "HEAD"):
                return self._not_allowed(handler, "GET, HEAD", reply_type)
            return _Answer(200, b"ok", "text/plain; charset=utf-8", close=_has_body(handler))
        if path != LOGS_PATH:
            return self._error(
                404, f"no such path {path[:100]!r} (OTLP logs go to {LOGS_PATH})", reply_type, close=_has_body(handler)
            )
        if handler.command != "POST":
            return self._not_allowed(handler, "POST", reply_type)
        with self._idle:
            self._active += 1
        try:
            return self._export(handler, reply_type)
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    def _not_allowed(self, handler: _Handler, allowed: str, reply_type: str) -> _Answer:
        answer = self._error(405, f"method {handler.command} not allowed", reply_type, close=_has_body(handler))
        answer.headers = {**(answer.headers or {}), "Allow": allowed}
        return answer

    def _export(self, handler: _Handler, reply_type: str) -> _Answer:
        arrived = time.monotonic()
        self._count(requests=1)
        headers = handler.headers
        try:
            if self._token is not None:
                self._authenticate(headers.get_all("Authorization") or [])
            content_type = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
            if content_type in _PROTOBUF_TYPES:
                content_type = _PROTOBUF
            elif content_type != _JSON:
                raise RequestProblem(415, f"Content-Type must be {_PROTOBUF} or {_JSON}, not {content_type!r}")
            encoding = (headers.get("Content-Encoding") or "identity").strip().lower()
            if encoding not in ("identity", "gzip", "x-gzip", "deflate"):
                raise RequestProblem(415, f"Content-Encoding {encoding!r} not supported (use gzip or none)")
            raw = self._read_body(handler)
        except RequestProblem as problem:
            # The body was not (fully) read: the connection cannot carry another request.
            return self._refuse(problem, reply_type, handler, close=True)
        try:
            data = raw if encoding == "identity" else inflate(raw, encoding, self.max_body_bytes)
            request = decode_request(data, content_type)
            del raw, data
            plan = plan_request(request)
            del request
        except RequestProblem as problem:
            return self._refuse(problem, reply_type, handler, close=False)
        self._count(records_received=plan.records)
        if not self._slots.acquire(timeout=self.request_deadline):
            return self._unavailable(_Outage(503, self.retry_after, "the gateway is busy"), reply_type)
        try:
            rejected, messages = self._deliver(plan, arrived)
        except _Outage as outage:
            return self._unavailable(outage, reply_type)
        finally:
            self._slots.release()
        if self._outage_since is not None:
            self._outage_since = None
            self._voice.forget("outage")
            self._voice.say("the Engine takes records again")
        if plan.missing_id:
            messages.insert(0, f"{plan.missing_id} {_MISSING_ID}")
            self._voice.say(f"rejected {plan.missing_id} {_MISSING_ID}", kind="missing-id")
        rejected += plan.missing_id
        if rejected:
            self._count(records_rejected=rejected)
        response = ExportLogsServiceResponse()
        if rejected:
            response.partial_success.rejected_log_records = rejected
            response.partial_success.error_message = "; ".join(messages)
        return _Answer(200, _encode_message(response, reply_type), reply_type)

    def _authenticate(self, values: list[str]) -> None:
        assert self._token is not None
        if len(values) == 1:
            scheme, _, credentials = values[0].strip().partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode("utf-8"), self._token):
                return
        raise RequestProblem(401, "missing or wrong bearer token" if values else "Authorization: Bearer required")

    def _read_body(self, handler: _Handler) -> bytes:
        """The raw request body, within ``max_body_bytes``; 411/413/400 otherwise."""
        headers = handler.headers
        limit = self.max_body_bytes
        transfer = (headers.get("Transfer-Encoding") or "").strip().lower()
        lengths = headers.get_all("Content-Length") or []
        if transfer:
            if lengths:
                raise RequestProblem(400, "both Transfer-Encoding and Content-Length given")
            if transfer != "chunked":
                raise RequestProblem(400, f"Transfer-Encoding {transfer!r} not supported")
            return _read_chunked(handler.rfile, limit)
        if not lengths:
            raise RequestProblem(411, "Content-Length required")
        if len(set(lengths)) != 1 or not lengths[0].strip().isdigit():
            raise RequestProblem(400, "malformed Content-Length")
        length = int(lengths[0])
        if length > limit:
            raise RequestProblem(413, f"body of {length} bytes is larger than {limit} bytes")
        try:
            body = handler.rfile.read(length)
        except OSError:
            raise RequestProblem(400, "connection broke while reading the body") from None
        if len(body) < length:
            raise RequestProblem(400, "body shorter than Content-Length")
        return body

    def _refuse(self, problem: RequestProblem, reply_type: str, handler: _Handler, *, close: bool) -> _Answer:
        self._count(bad_requests=1)
        client = handler.client_address[0] if handler.client_address else "?"
        self._voice.say(f"answered {problem.status} to {client}: {problem.message}", kind=f"refused-{problem.status}")
        answer = self._error(problem.status, problem.message, reply_type, close=close)
        if problem.status == 401:
            answer.headers = {**(answer.headers or {}), "WWW-Authenticate": "Bearer"}
        return answer

    def _unavailable(self, outage: _Outage, reply_type: str) -> _Answer:
        if outage.status == 429:
            self._count(answered_429=1)
        else:
            self._count(answered_503=1)
        if self._outage_since is None:
            self._outage_since = time.monotonic()
        self._voice.say(
            f"cannot deliver to the Engine ({outage.reason}); answering {outage.status}, "
            f"the collector keeps the records and retries",
            kind="outage",
        )
        answer = self._error(outage.status, f"the Engine cannot take records now: {outage.reason}", reply_type)
        answer.headers = {"Retry-After": str(outage.retry_after)}
        return answer

    @staticmethod
    def _error(status: int, message: str, reply_type: str, *, close: bool = False) -> _Answer:
        return _Answer(status, _rpc_status(status, message, reply_type), reply_type, close=close)

    # -- delivery ------------------------------------------------------------------------

    def _deliver(self, plan: _Plan, arrived: float) -> tuple[int, list[str]]:
        """Make the plan's Engine calls in order; returns (records rejected, messages). Raises _Outage."""
        deadline = arrived + self.request_deadline
        rejected = 0
        messages: list[str] = []
        with self._clients.client() as client:
            for step in plan.steps:
                if isinstance(step, _StatusEvent):
                    problem = self._send_status(client, step, deadline)
                    if problem is not None:
                        rejected += 1
                        messages.append(problem)
                    continue
                offset = 0
                for body, count in pack_records(step.records):
                    stamps = step.stamps[2 * offset : 2 * (offset + count)]
                    offset += count
                    key = hashlib.sha256(body + array("Q", stamps).tobytes()).digest()
                    problem = self._send_logs(client, body, count, key, deadline)
                    if problem is not None:
                        rejected += count
                        messages.append(problem)
        return rejected, messages

    def _send_logs(self, client: EngineClient, body: bytes, count: int, key: bytes, deadline: float) -> str | None:
        """Deliver one logs/write body unless already delivered; a message when rejected for good."""
        self._check_deadline(deadline)
        claimed = self._delivered.claim(key, deadline)
        if claimed is None:
            raise _Outage(503, self.retry_after, "another attempt at the same records is still in progress")
        if not claimed:
            self._count(records_skipped_as_duplicates=count)
            return None
        accepted = False
        try:
            client.write_logs(body)
            accepted = True
        except EngineError as error:
            if error.retryable:
                raise self._outage(error) from None
            record_id = _first_id(body)
            self._voice.say(
                f"the Engine rejected {count} log records of {record_id} ({error}); "
                "reported to the collector as rejected",
                kind=f"rejected-{error.status}",
            )
            return f"the Engine rejected {count} log records: {error}"
        finally:
            self._delivered.release(key, accepted)
        self._count(records_sent=count)
        return None

    def _send_status(self, client: EngineClient, event: _StatusEvent, deadline: float) -> str | None:
        """Deliver a status if it changes the component's last accepted one; a message when rejected."""
        with self._last_status.lock_for(event.process_id):
            if self._last_status.get(event.process_id) == event.status or event.key in self._delivered:
                self._count(statuses_unchanged=1)
                return None
            self._check_deadline(deadline)
            try:
                client.update_status(event.process_id, event.status)
            except EngineError as error:
                if error.retryable:
                    raise self._outage(error) from None
                self._voice.say(
                    f"the Engine rejected status {event.status} of {event.process_id} ({error}); "
                    "reported to the collector as rejected",
                    kind=f"rejected-{error.status}",
                )
                return f"the Engine rejected status {event.status} of {event.process_id}: {error}"
            self._last_status.set(event.process_id, event.status)
            self._delivered.remember(event.key)
        self._count(statuses_sent=1)
        return None

    def _check_deadline(self, deadline: float) -> None:
        if time.monotonic() >= deadline:
            raise _Outage(503, self.retry_after, f"the Engine is too slow (over {self.request_deadline:g} s)")

    def _outage(self, error: EngineError) -> _Outage:
        wait = self.retry_after
        if error.retry_after is not None:
            wait = max(1, math.ceil(min(error.retry_after, MAX_RETRY_AFTER)))
        return _Outage(429 if error.status == 429 else 503, wait, str(error))


# -- helpers -------------------------------------------------------------------------------


def _has_body(handler: _Handler) -> bool:
    """Whether the request announced a body we did not read (then the connection must close)."""
    length = handler.headers.get("Content-Length")
    return bool(handler.headers.get("Transfer-Encoding")) or (length is not None and length.strip() != "0")


def _reply_type(content_type: str | None) -> str:
    """Errors and responses use the request's encoding (OTLP/HTTP spec); protobuf unless it is JSON."""
    value = (content_type or "").split(";", 1)[0].strip().lower()
    return _JSON if value == _JSON else _PROTOBUF


def _encode_message(message: Any, reply_type: str) -> bytes:
    if reply_type == _JSON:
        return json.dumps(json_format.MessageToDict(message), ensure_ascii=False).encode("utf-8")
    return message.SerializeToString()


def _rpc_status(status: int, message: str, reply_type: str) -> bytes:
    """A ``google.rpc.Status`` body, as the OTLP/HTTP specification asks of error answers."""
    code = _RPC_CODE.get(status, 2)  # UNKNOWN
    if reply_type == _JSON:
        return json.dumps({"code": code, "message": message}, ensure_ascii=False).encode("utf-8")
    # Status { int32 code = 1; string message = 2; }: two fields, written by hand
    # so error answers do not depend on googleapis-common-protos.
    text = message.encode("utf-8")
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _read_chunked(stream: Any, limit: int) -> bytes:
    """A ``Transfer-Encoding: chunked`` body, refused (413) as soon as it passes ``limit``."""
    parts: list[bytes] = []
    size = 0
    try:
        while True:
            line = stream.readline(1026)
            if not line.endswith(b"\n"):
                raise RequestProblem(400, "malformed chunked body")
            try:
                chunk_size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise RequestProblem(400, "malformed chunk size") from None
            if chunk_size < 0:
                raise RequestProblem(400, "malformed chunk size")
            if chunk_size == 0:
                for _ in range(100):  # trailer fields, then the empty line
                    trailer = stream.readline(8194)
                    if trailer in (b"\r\n", b"\n", b""):
                        return b"".join(parts)
                raise RequestProblem(400, "too many trailer fields")
            size += chunk_size
            if size > limit:
                raise RequestProblem(413, f"body larger than {limit} bytes")
            data = stream.read(chunk_size)
            if len(data) < chunk_size or stream.readline(3) not in (b"\r\n", b"\n"):
                raise RequestProblem(400, "truncated chunked body")
            parts.append(data)
    except OSError:
        raise RequestProblem(400, "connection broke while reading the body") from None


def _first_id(body: bytes) -> str:
    """The component id of the first record in a logs/write body, for a log line."""
    start = body.find(b'"id":"')
    if start < 0:
        return "?"
    end = body.find(b'"', start + 6)
    return body[start + 6 : end].decode("utf-8", "replace")[:100] if end > 0 else "?"


# -- command line --------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse that reports mistakes as one line with exit 2 (like cli.py's parser), never exits itself.

    It raises ``settings.ConfigError`` rather than ``cli.UsageError``: under
    ``python -m splight_runner.cli`` the running CLI is ``__main__``, and a
    ``UsageError`` imported from ``splight_runner.cli`` would be another class
    that it does not catch. The CLI treats both the same way.
    """

    def error(self, message: str) -> NoReturn:
        raise config.ConfigError(f"{self.prog}: {message}")


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT`` or ``:PORT`` (127.0.0.1) as a bindable address."""
    value = text.strip()
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit():
        raise config.ConfigError(f"gateway: --listen {text!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise config.ConfigError(f"gateway: --listen {text!r}: write an IPv6 address as [ADDRESS]:PORT")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise config.ConfigError(f"gateway: --listen {text!r}: {port} is not a TCP port")
    return host or DEFAULT_HOST, port


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    return value


def main(args: Sequence[str]) -> int:
    """``splight-runner gateway``: serve until SIGINT/SIGTERM; 0 then, config problems raise (exit 2)."""
    parser = _Parser(
        prog="splight-runner gateway",
        description="OTLP/HTTP logs receiver that makes the Splight Engine calls (POST /v1/logs, GET /healthz).",
    )
    parser.add_argument("--listen", default=DEFAULT_LISTEN, help=f"HOST:PORT to listen on (default {DEFAULT_LISTEN})")
    parser.add_argument(
        "--token",
        help=f"require 'Authorization: Bearer TOKEN' (prefer the {names.SPLIGHT_GATEWAY_TOKEN} variable: "
        "arguments are visible to other users)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=_positive,
        default=DEFAULT_MAX_BODY_BYTES,
        help=f"largest request body, raw and decompressed (default {DEFAULT_MAX_BODY_BYTES})",
    )
    parser.add_argument(
        "--stats-interval",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="print a counters line this often (default 0: only when stopping)",
    )
    ns = parser.parse_args(list(args))
    host, port = parse_listen(ns.listen)
    engine = config.engine_settings()
    token = ns.token if ns.token is not None else config.read(names.SPLIGHT_GATEWAY_TOKEN)
    if token is not None and (not token or any(ch.isspace() for ch in token) or not token.isprintable()):
        raise config.ConfigError(f"gateway: the token ({names.SPLIGHT_GATEWAY_TOKEN}) is empty or has whitespace")
    gateway = Gateway((host, port), engine, token=token or None, max_body_bytes=ns.max_body_bytes)
    try:
        gateway.start()
    except OSError as error:
        raise config.ConfigError(f"gateway: cannot listen on {ns.listen}: {error.strerror or error}") from None
    auth = "bearer token required" if token else "no token"
    print(f"splight-runner gateway: listening on {gateway.url} ({auth}), Engine {engine.base_url}", flush=True)
    stop = threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    try:
        next_stats = time.monotonic() + ns.stats_interval
        while not stop.wait(0.5):
            if ns.stats_interval and time.monotonic() >= next_stats:
                next_stats = time.monotonic() + ns.stats_interval
                print(f"splight-runner gateway: {gateway.stats.line()}", flush=True)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        gateway.stop()
    print(f"splight-runner gateway: stopped; {gateway.stats.line()}", flush=True)
    return 0
