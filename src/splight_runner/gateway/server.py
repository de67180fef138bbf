"""``splight-runner gateway``: an OTLP/HTTP logs receiver that makes the Splight Engine calls.

Why it exists: a component can export plain OTLP to an OpenTelemetry Collector
deployed beside it (the third way in, besides ``run-component`` and
``opentelemetry-instrument`` with the ``splight`` exporter); the collector queues, retries and
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
  accepted for that component id (a status is sent only when it changes,
  as the in-process exporter does too); an already accepted status event (same id, status and
  timestamps) is also remembered in the LRU, so a late retry cannot move a
  component back to an older status.

A key that another request is delivering at that moment (a collector that
timed out and retried while the first attempt is still running) is waited
for rather than sent twice. The memory lives in this process: a gateway killed
between the Engine's acceptance and its own answer can still cause one
duplicate POST after it restarts.

Limits (why and the measurements: collector-config/README.md, "The gateway"):
records per request (``max_records``, 413), values per record, body size (raw,
inflated, a 16th for JSON); the request is walked on the wire
(:class:`~splight_runner.gateway.otlp_http.LogsRequest`) and translated one POST
at a time inside a delivery slot (:meth:`~splight_runner.gateway.plan.Plan.steps`);
``max_connections`` with idle and read timeouts (:class:`~splight_runner._http.ConnectionLimits`).

Threads: one front-door thread holds every connection until its request head is whole
(:class:`~splight_runner._http.FrontDoor`), and a bounded pool of workers answers those
requests: a crowd of clients that trickle their headers costs descriptors, not threads, and
never delays the collector's requests. :class:`EngineClient` is not thread-safe, so each request borrows a client from
a small pool (one client per thread at a time, the Engine keep-alive
connection reused by the next request) rather than a thread-local one, which
would leave one idle Engine connection behind for every collector connection
that ever closed.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import math
import sys
import threading
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any, TextIO

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from splight_runner import diagnostics
from splight_runner import environment as names
from splight_runner._http import (
    Answer,
    ConnectionHandler,
    ConnectionLimits,
    OpenConnections,
    ThreadedHTTPServer,
    connection_cap,
    http_url,
)
from splight_runner.engine import records
from splight_runner.engine.client import MAX_RETRY_AFTER, EngineClient, EngineError, pack_records
from splight_runner.gateway.memory import Delivered, LastStatus
from splight_runner.gateway.otlp_http import (
    JSON,
    PROTOBUF,
    PROTOBUF_TYPES,
    RequestProblem,
    decode_request,
    encode_message,
    has_body,
    inflate,
    read_chunked,
    reply_type_for,
    rpc_status,
    short,
)
from splight_runner.gateway.plan import Plan, StatusEvent, plan_request
from splight_runner.settings import EngineSettings

__all__ = [
    "DEFAULT_LISTEN",
    "DEFAULT_MAX_BODY_BYTES",
    "Gateway",
    "GatewayStats",
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
#: Most log records (and, apart, most resource + scope groups) in one request; more is 413.
#: A collector batch is ~1,000; parsed, a record costs its size plus ~130 bytes.
DEFAULT_MAX_RECORDS = 100_000
#: JSON bodies get this fraction of the body limit: a decoded JSON document takes up to
#: ~20 times its size and its protobuf form as much again (the collector sends protobuf).
JSON_BODY_SHARE = 16
#: Engine statuses that mean "these credentials may not write": the gateway's own
#: configuration is wrong, not the records, so it answers 503 and the collector keeps them.
CREDENTIALS_REFUSED = (401, 403)
#: Requests delivering to the Engine at the same time (and so Engine
#: connections); more wait for a slot, at most the request deadline, then get 503.
DEFAULT_MAX_CONCURRENT = 16
#: Idle keep-alive connections (and new ones that send nothing) are closed after this long.
KEEPALIVE_TIMEOUT = 90.0
#: A request's line, headers and body must arrive within this long (slow clients are cut).
READ_TIMEOUT = 30.0
#: Open client connections at most; at the cap the one that has waited longest for a request
#: is closed for a newcomer. A waiting connection costs a descriptor and a small buffer, no thread
#: (``_http.FrontDoor``), so the cap is high; lowered to keep FD_RESERVE descriptors free under
#: ``ulimit -n`` (whose soft limit the gateway raises to the hard one).
DEFAULT_MAX_CONNECTIONS = 4096
#: File descriptors kept free beyond the collector connections: Engine connections
#: (``max_concurrent``) come on top of this.
FD_RESERVE = 32

LOGS_PATH = "/v1/logs"
HEALTH_PATH = "/healthz"

_MISSING_ID = f"log records without the resource attribute {records.RESOURCE_COMPONENT_ID}"


def _raise_open_files_limit() -> None:
    """The soft ``RLIMIT_NOFILE`` up to the hard one: connections waiting at the front door cost a descriptor."""
    with contextlib.suppress(ImportError, OSError, ValueError):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


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


class _Outage(Exception):
    """The Engine cannot take records now: answer 503/429 and let the collector retry."""

    def __init__(self, status: int, retry_after: int, reason: str, *, quiet: bool = False) -> None:
        super().__init__(reason)
        self.status = status
        self.retry_after = retry_after
        self.reason = reason
        #: Already said on stderr (rate-limited) where it was found.
        self.quiet = quiet


class _Server(ThreadedHTTPServer):
    request_queue_size = 128
    owner: Gateway

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Each connection's failure stays with it; a client that vanished is not news.
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, OSError):
            self.owner._voice.say(f"error serving {client_address[0]}: {short(error)}", kind="handler-error")


class _Handler(ConnectionHandler):
    server_version = "splight-runner-gateway"
    timeout = KEEPALIVE_TIMEOUT
    server: _Server

    def prepare_connection(self) -> None:
        # The socket's own timeout is a backstop; the server's sweep closes idle connections on time.
        if self.server.limits is not None:
            self.timeout = self.server.limits.idle_timeout + 5.0

    def __getattr__(self, name: str) -> Any:
        # Every method (also ones http.server does not know) reaches the same
        # dispatcher, so the answer is a 405 rather than http.server's 501.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def _dispatch(self) -> None:
        gateway = self.server.owner
        try:
            answer = gateway._handle(self)
        except Exception as error:  # a bug must cost one request, never the server
            gateway._voice.say(f"internal error ({type(error).__name__}: {short(error)})", kind="internal")
            answer = gateway._error(500, "internal error in the gateway", PROTOBUF, close=True)
        self.send_answer(answer)


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
        max_records: int = DEFAULT_MAX_RECORDS,
        engine_timeout: float = DEFAULT_ENGINE_TIMEOUT,
        request_deadline: float = DEFAULT_REQUEST_DEADLINE,
        retry_after: int = DEFAULT_RETRY_AFTER,
        dedup_entries: int = DEFAULT_DEDUP_ENTRIES,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        idle_timeout: float = KEEPALIVE_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        out: TextIO | None = STDERR,
    ) -> None:
        if engine is None:
            raise ValueError("Gateway needs the Engine settings (settings.engine_settings())")
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be positive")
        self.host, self.port = listen[0], int(listen[1])
        self.engine = engine
        self.max_body_bytes = max_body_bytes
        self.max_json_bytes = max(1, max_body_bytes // JSON_BODY_SHARE)
        if max_records < 1:
            raise ValueError("max_records must be positive")
        self.max_records = max_records
        self.request_deadline = request_deadline
        self.retry_after = max(1, int(retry_after))
        self._token = token.encode("utf-8") if token else None
        self._clients = _ClientPool(engine, engine_timeout, keep=max_concurrent)
        self._delivered = Delivered(dedup_entries)
        self._last_status = LastStatus(dedup_entries)
        self._slots = threading.BoundedSemaphore(max(1, max_concurrent))
        self._max_concurrent = max(1, max_concurrent)
        self._voice = _Voice(out)
        self._stats = GatewayStats()
        self._stats_lock = threading.Lock()
        self._outage_since: float | None = None
        self._connections = OpenConnections()
        if max_connections < 1:
            raise ValueError("max_connections must be positive")
        _raise_open_files_limit()
        self.limits = ConnectionLimits(
            max_connections=connection_cap(max_connections, FD_RESERVE + max(1, max_concurrent)),
            idle_timeout=idle_timeout,
            read_timeout=read_timeout,
        )
        self._active = 0
        self._idle = threading.Condition()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://host:port`` the collector's ``otlphttp`` exporter points at (it appends /v1/logs)."""
        return http_url("http", self.host, self.port)

    @property
    def stats(self) -> GatewayStats:
        with self._stats_lock:
            return GatewayStats(**{f.name: getattr(self._stats, f.name) for f in fields(GatewayStats)})

    def start(self) -> Gateway:
        """Bind (port 0 picks a free one) and serve in a background thread. Raises OSError if it cannot bind."""
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), _Handler, self, limits=self.limits, connections=self._connections)
        self.port = int(server.server_address[1])
        server.workers = max(32, 2 * self._max_concurrent)
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
        self._connections.cut()
        self._clients.close()

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _count(self, **increments: int) -> None:
        with self._stats_lock:
            for name, value in increments.items():
                setattr(self._stats, name, getattr(self._stats, name) + value)

    # -- one request ---------------------------------------------------------------------

    def _handle(self, handler: _Handler) -> Answer:
        path = handler.path.split("?", 1)[0]
        reply_type = reply_type_for(handler.headers.get("Content-Type"))
        if path == HEALTH_PATH:
            if handler.command not in ("GET", "HEAD"):
                return self._not_allowed(handler, "GET, HEAD", reply_type)
            return Answer(200, b"ok", "text/plain; charset=utf-8", close=has_body(handler))
        if path != LOGS_PATH:
            return self._error(
                404, f"no such path {path[:100]!r} (OTLP logs go to {LOGS_PATH})", reply_type, close=has_body(handler)
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

    def _not_allowed(self, handler: _Handler, allowed: str, reply_type: str) -> Answer:
        answer = self._error(405, f"method {handler.command} not allowed", reply_type, close=has_body(handler))
        answer.headers = {**(answer.headers or {}), "Allow": allowed}
        return answer

    def _export(self, handler: _Handler, reply_type: str) -> Answer:
        arrived = time.monotonic()
        self._count(requests=1)
        headers = handler.headers
        try:
            if self._token is not None:
                self._authenticate(headers.get_all("Authorization") or [])
            content_type = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
            if content_type in PROTOBUF_TYPES:
                content_type = PROTOBUF
            elif content_type != JSON:
                raise RequestProblem(415, f"Content-Type must be {PROTOBUF} or {JSON}, not {content_type!r}")
            encoding = (headers.get("Content-Encoding") or "identity").strip().lower()
            if encoding not in ("identity", "gzip", "x-gzip", "deflate"):
                raise RequestProblem(415, f"Content-Encoding {encoding!r} not supported (use gzip or none)")
            raw = self._read_body(handler)
            handler.request_read()
        except RequestProblem as problem:
            # The body was not (fully) read: the connection cannot carry another request.
            return self._refuse(problem, reply_type, handler, close=True)
        try:
            limit = self.max_body_bytes if content_type == PROTOBUF else self.max_json_bytes
            if len(raw) > limit:
                raise RequestProblem(413, f"{content_type} body of {len(raw)} bytes is larger than {limit} bytes")
            data = raw if encoding == "identity" else inflate(raw, encoding, limit)
            del raw
            plan = plan_request(decode_request(data, content_type, self.max_records))
            del data
        except RequestProblem as problem:
            return self._refuse(problem, reply_type, handler, close=False)
        self._count(records_received=plan.records)
        if not self._slots.acquire(timeout=max(0.0, arrived + self.request_deadline - time.monotonic())):
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
        return Answer(200, encode_message(response, reply_type), reply_type)

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
            return read_chunked(handler.rfile, limit)
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

    def _refuse(self, problem: RequestProblem, reply_type: str, handler: _Handler, *, close: bool) -> Answer:
        self._count(bad_requests=1)
        client = handler.client_address[0] if handler.client_address else "?"
        self._voice.say(f"answered {problem.status} to {client}: {problem.message}", kind=f"refused-{problem.status}")
        answer = self._error(problem.status, problem.message, reply_type, close=close)
        if problem.status == 401:
            answer.headers = {**(answer.headers or {}), "WWW-Authenticate": "Bearer"}
        return answer

    def _unavailable(self, outage: _Outage, reply_type: str) -> Answer:
        if outage.status == 429:
            self._count(answered_429=1)
        else:
            self._count(answered_503=1)
        if self._outage_since is None:
            self._outage_since = time.monotonic()
        if not outage.quiet:
            self._voice.say(
                f"cannot deliver to the Engine ({outage.reason}); answering {outage.status}, "
                f"the collector keeps the records and retries",
                kind="outage",
            )
        answer = self._error(outage.status, f"the Engine cannot take records now: {outage.reason}", reply_type)
        answer.headers = {"Retry-After": str(outage.retry_after)}
        return answer

    @staticmethod
    def _error(status: int, message: str, reply_type: str, *, close: bool = False) -> Answer:
        return Answer(status, rpc_status(status, message, reply_type), reply_type, close=close)

    # -- delivery ------------------------------------------------------------------------

    def _deliver(self, plan: Plan, arrived: float) -> tuple[int, list[str]]:
        """Make the plan's Engine calls in order, translating one POST's worth of records at a time;
        returns (records rejected, messages). Raises _Outage."""
        deadline = arrived + self.request_deadline
        rejected = 0
        messages: list[str] = []
        with self._clients.client() as client:
            for step in plan.steps():
                if isinstance(step, StatusEvent):
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
            if error.retryable or error.status in CREDENTIALS_REFUSED:
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

    def _send_status(self, client: EngineClient, event: StatusEvent, deadline: float) -> str | None:
        """Deliver a status if it changes the component's last accepted one; a message when rejected."""
        with self._last_status.lock_for(event.process_id):
            if self._last_status.get(event.process_id) == event.status or event.key in self._delivered:
                self._count(statuses_unchanged=1)
                return None
            self._check_deadline(deadline)
            try:
                client.update_status(event.process_id, event.status)
            except EngineError as error:
                if error.retryable or error.status in CREDENTIALS_REFUSED:
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
        if error.status in CREDENTIALS_REFUSED:
            diagnostics.say_limited(
                "gateway-engine-credentials",
                f"gateway: the Engine refuses the gateway's credentials ({error}); answering 503 so the "
                f"collector keeps the records; check {names.SPLIGHT_ACCESS_ID} and {names.SPLIGHT_SECRET_KEY}",
            )
            return _Outage(503, self.retry_after, f"the Engine refuses the gateway's credentials ({error})", quiet=True)
        wait = self.retry_after
        if error.retry_after is not None:
            wait = max(1, math.ceil(min(error.retry_after, MAX_RETRY_AFTER)))
        return _Outage(429 if error.status == 429 else 503, wait, str(error))


def _first_id(body: bytes) -> str:
    """The component id of the first record in a logs/write body, for a log line."""
    start = body.find(b'"id":"')
    if start < 0:
        return "?"
    end = body.find(b'"', start + 6)
    return body[start + 6 : end].decode("utf-8", "replace")[:100] if end > 0 else "?"
