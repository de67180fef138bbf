"""A small, real stand-in of the Splight Engine's two endpoints.

Why it exists: to try the runner without an account (``splight-runner
dev-engine``) and to test every part of the runner against real HTTP instead
of mocks. It is the single description, in code, of what the Engine accepts
(see :func:`validate_logs_payload` and :func:`validate_status_form`), so it is
strict: anything the real Engine could reject is rejected here too, answered
the way the Engine answers (JSON ``{"detail": "..."}``).

It is observable (:attr:`DevEngine.records`, :attr:`DevEngine.statuses`,
:attr:`DevEngine.requests`, :attr:`DevEngine.connections`, :meth:`DevEngine.wait_for`)
and can misbehave on purpose (:meth:`DevEngine.fail_next`,
:meth:`DevEngine.set_delay`, :meth:`DevEngine.refuse_for`,
:meth:`DevEngine.close_mid_response`), from Python or, for other processes,
over HTTP under ``/_dev/`` (no authentication: it is a local development tool).

Standard library only, so it can run anywhere the runner runs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs, unquote, urlsplit

from splight_runner._http import (
    Answer,
    ConnectionHandler,
    OpenConnections,
    ThreadedHTTPServer,
    http_url,
    wait_for_stop_signal,
)

__all__ = [
    "LOG_LEVELS",
    "MAX_BODY_BYTES",
    "STATUSES",
    "DevEngine",
    "ReceivedRequest",
    "run",
    "validate_logs_payload",
    "validate_status_form",
]

#: Values of a record's ``loglevel`` the Engine accepts.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: Values of ``deployment_status`` the Engine accepts (``Unknown`` is not one).
STATUSES = ("Running", "Stopped", "Failed", "Succeeded", "Finished", "Initialized")
#: Largest request body accepted; larger ones are answered 413 without being read.
MAX_BODY_BYTES = 8 * 1024 * 1024

_STRING_FIELDS = ("sender_type", "id", "name", "message", "loglevel", "filename", "traceback")
_RFC3339_UTC = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|\+00:00)\Z")
_ENDPOINTS = ("logs", "status", "any")
_FORM = "application/x-www-form-urlencoded"
_JSON = "application/json"


#: The ``--record`` file's lines (``json.dumps`` with the same option makes an encoder per call).
_RECORD_LINE = json.JSONEncoder(ensure_ascii=False)


def _log_line(record: dict[str, Any]) -> dict[str, Any]:
    """A record as its ``--record`` line: ``kind`` first, and ``log`` whatever the record carries."""
    line = {"kind": "log", **record}
    line["kind"] = "log"
    return line


class _Invalid(ValueError):
    """A request the Engine would answer 400; the message is the ``detail``."""


#: Seconds (``YYYY-MM-DDTHH:MM:SS``) already found to be real dates: records come in bursts.
_VALID_SECONDS: set[str] = set()


def _is_rfc3339_utc(value: Any) -> bool:
    if type(value) is not str:
        return False
    # What the runner sends, ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in a second already seen: its shape, without the regex.
    usual = len(value) == 27 and value[19] == "." and value[26] == "Z" and value[20:26].isdecimal()
    if usual and value[:19] in _VALID_SECONDS:
        return True
    match = _RFC3339_UTC.match(value)
    if match is None:
        return False
    if value[:19] in _VALID_SECONDS:
        return True
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    try:
        dt.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return False
    if len(_VALID_SECONDS) > 4096:
        _VALID_SECONDS.clear()
    _VALID_SECONDS.add(value[:19])
    return True


def validate_logs_payload(payload: Any) -> list[dict[str, Any]]:
    """The records of a logs/write body, or :class:`ValueError` saying what is wrong.

    Rules: an object with a ``records`` list; each record an object with the
    string fields ``sender_type, id, name, message, loglevel, filename,
    traceback``, a ``tags`` key (any JSON, ``null`` included), ``loglevel`` one
    of :data:`LOG_LEVELS`, and ``timestamp``, when present, an RFC 3339 UTC
    string. Other fields (``trace_id``, ``span_id`` ...) are allowed. An empty
    list is accepted: it writes nothing, and is a harmless way to test
    credentials.
    """
    if not isinstance(payload, dict):
        raise _Invalid("body must be a JSON object with a 'records' list")
    records = payload.get("records")
    if not isinstance(records, list):
        raise _Invalid("'records' must be a list")
    for index, record in enumerate(records):
        # The usual record is checked without building any text and in few steps: the stand-in
        # reads every record of a burst, and its checks cost it more than parsing the body did.
        try:
            fine = (
                type(record) is dict
                and all([type(value) is str for value in _string_fields(record)])
                and "tags" in record
                and record["loglevel"] in LOG_LEVELS
                and ("timestamp" not in record or _is_rfc3339_utc(record["timestamp"]))
            )
        except KeyError:  # a string field is missing
            fine = False
        if not fine:
            raise _Invalid(_what_is_wrong(f"records[{index}]", record))
    return records


_string_fields = itemgetter(*_STRING_FIELDS)


def _what_is_wrong(where: str, record: Any) -> str:
    """The ``detail`` for a record :func:`validate_logs_payload` refused: its first broken rule."""
    if not isinstance(record, dict):
        return f"{where} must be an object"
    for name in _STRING_FIELDS:
        if name not in record:
            return f"{where}.{name} is required"
        if not isinstance(record[name], str):
            return f"{where}.{name} must be a string"
    if "tags" not in record:
        return f"{where}.tags is required (null when there are none)"
    if record["loglevel"] not in LOG_LEVELS:
        return f"{where}.loglevel {record['loglevel']!r} is not one of {', '.join(LOG_LEVELS)}"
    return f"{where}.timestamp must be an RFC 3339 UTC time like 2024-01-31T12:00:00.000001Z"


def validate_status_form(body: bytes) -> str:
    """The ``deployment_status`` of an update-status form body, or :class:`ValueError`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _Invalid("form body is not UTF-8") from None
    fields = parse_qs(text, keep_blank_values=True)
    values = fields.get("deployment_status")
    if not values:
        raise _Invalid("deployment_status is required")
    if len(values) > 1:
        raise _Invalid("deployment_status given more than once")
    if values[0] not in STATUSES:
        raise _Invalid(f"deployment_status {values[0]!r} is not one of {', '.join(STATUSES)}")
    return values[0]


@dataclass(frozen=True)
class ReceivedRequest:
    """One request the DevEngine answered (control requests under ``/_dev/`` excluded).

    ``status`` is the status code answered, ``0`` when the connection was cut
    instead (:meth:`DevEngine.close_mid_response`). ``records`` is the number
    of records in the body when it was a readable records list, even if the
    request was rejected. ``time`` is ``time.monotonic()`` when it was
    answered, for measuring retry intervals. ``connection`` numbers the TCP
    connection it came on (1 for the first accepted), to observe keep-alive.
    """

    method: str
    path: str
    status: int
    records: int
    time: float
    connection: int
    content_type: str | None = None
    body: bytes = field(default=b"", repr=False)

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class _Failure:
    remaining: int
    status: int
    retry_after: str | None
    endpoint: str


class _Answer(Answer):
    """An answer as the Engine gives it: a JSON ``payload`` (``{"detail": ...}`` for errors)."""

    def __init__(
        self,
        status: int,
        payload: Any = None,
        headers: dict[str, str] | None = None,
        close: bool = False,
        cut: bool = False,
    ) -> None:
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode("utf-8")
        super().__init__(status, body, _JSON, headers or {}, close)
        self.payload = payload
        self.cut = cut  # write a partial status line and close


class _Server(ThreadedHTTPServer):
    owner: DevEngine

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that disconnects or fails its TLS handshake is not news.
        pass


class _Handler(ConnectionHandler):
    server_version = "splight-dev-engine"
    server: _Server

    def connection_opened(self) -> None:
        engine = self.server.owner
        self.timeout = engine.keepalive_timeout
        self.connection_number = engine._connections.opened(self.request)

    def prepare_connection(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(self.timeout)
            self.request.do_handshake()

    def connection_closed(self) -> None:
        self.server.owner._connections.closed(self.request)

    def do_POST(self) -> None:
        self._dispatch()

    do_GET = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = do_POST

    # -- plumbing ------------------------------------------------------------

    def _send(self, answer: _Answer) -> None:
        if answer.cut:
            self.wfile.write(b"HTTP/1.1 20")
            self.wfile.flush()
            with contextlib.suppress(OSError):
                self.request.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.send_answer(answer)

    def _read_body(self) -> bytes | _Answer:
        if self.headers.get("Transfer-Encoding"):
            return _Answer(411, {"detail": "send the body with a Content-Length"}, close=True)
        raw = self.headers.get("Content-Length")
        try:
            length = int(raw) if raw is not None else 0
            if length < 0:
                raise ValueError
        except ValueError:
            return _Answer(400, {"detail": "malformed Content-Length"}, close=True)
        if length > MAX_BODY_BYTES:
            return _Answer(413, {"detail": f"request body larger than {MAX_BODY_BYTES} bytes"}, close=True)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            self.close_connection = True
            return _Answer(400, {"detail": "body shorter than Content-Length"}, close=True)
        return body

    def _dispatch(self) -> None:
        engine = self.server.owner
        # Origin-form ("/v3/...") as sent to a server; absolute-form as sent to a proxy.
        path = self.path.split("?", 1)[0] if self.path.startswith("/") else urlsplit(self.path).path
        body = self._read_body()
        if path.startswith("/_dev/"):
            self._send(body if isinstance(body, _Answer) else engine._control(self.command, path, body, self.request))
            return
        records = 0
        if isinstance(body, _Answer):
            answer, body = body, b""
        else:
            try:
                answer, records = engine._serve(self.command, path, self.headers, body)
            except Exception as error:  # a bug here must still answer, as a server would
                answer = _Answer(500, {"detail": f"dev engine error: {type(error).__name__}"}, close=True)
        engine._log_request(
            ReceivedRequest(
                method=self.command,
                path=path,
                status=0 if answer.cut else answer.status,
                records=records,
                time=time.monotonic(),
                connection=self.connection_number,
                content_type=self.headers.get("Content-Type"),
                body=body,
            ),
            answer,
        )
        self._send(answer)


class DevEngine:
    """The Engine's logs/write and update-status endpoints, served on a background thread.

    Use as ``with DevEngine() as engine:`` or ``engine = DevEngine().start()``;
    point the runner at :attr:`url` with the credentials given here. Every
    public method is thread-safe.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        access_id: str = "dev-access",
        secret_key: str = "dev-secret",
        api_version: str = "v3",
        record_path: Path | None = None,
        out: TextIO | None = None,
        keepalive_timeout: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.access_id = access_id
        self.api_version = api_version.strip("/")
        self.record_path = record_path
        self.keepalive_timeout = keepalive_timeout
        self._authorization = f"Splight {access_id} {secret_key}"
        self._out = out
        self._ssl_context = ssl_context
        self._lock = threading.Condition(threading.RLock())
        self._life = threading.Lock()
        self._records: list[dict[str, Any]] = []
        self._statuses: list[tuple[str, str]] = []
        self._requests: list[ReceivedRequest] = []
        self._connections = OpenConnections()
        self._answered = 0  # requests logged so far, for wait_for
        self._failures: list[_Failure] = []
        self._cuts = 0
        self._delay = 0.0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._rebind: threading.Timer | None = None
        self._record_file: TextIO | None = None
        self._started = False
        self._stopped = False
        self._status_path = re.compile(
            rf"/{re.escape(self.api_version)}/engine/component/components/([^/]+)/update-status/\Z"
        )
        self._logs_path = f"/{self.api_version}/logs/write/"

    # -- lifecycle -------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL to use as ``SPLIGHT_PLATFORM_API_HOST``."""
        return http_url("https" if self._ssl_context is not None else "http", self.host, self.port)

    def start(self) -> DevEngine:
        """Bind (``port=0`` picks a free port, see :attr:`port`) and serve in the background."""
        with self._life:
            if self._started:
                return self
            if self.record_path is not None:
                self._record_file = open(self.record_path, "a", encoding="utf-8")  # noqa: SIM115
            try:
                self._serve_on(self.port)
            except BaseException:
                if self._record_file is not None:
                    self._record_file.close()
                raise
            self._started = True
            return self

    def stop(self) -> None:
        """Stop serving, cut open connections, close the record file. Idempotent."""
        with self._life:
            self._stopped = True
            if self._rebind is not None:
                self._rebind.cancel()
                self._rebind = None
            self._stop_serving()
            if self._record_file is not None:
                with self._lock:
                    self._record_file.close()
                    self._record_file = None

    def __enter__(self) -> DevEngine:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve_on(self, port: int) -> None:
        server = _Server((self.host, port), _Handler, self)
        if self._ssl_context is not None:
            server.socket = self._ssl_context.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = server.serve_in_background(f"dev-engine:{self.port}", poll_interval=0.05)

    def _stop_serving(self, spare: socket.socket | None = None) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.stop_background(thread)
        self._connections.cut(spare)

    def _come_back(self) -> None:
        with self._life:
            self._rebind = None
            if self._stopped or self._server is not None:
                return
            deadline = time.monotonic() + 5.0
            while True:
                try:
                    self._serve_on(self.port)
                    return
                except OSError as error:
                    if time.monotonic() > deadline:
                        self._print(f"[dev-engine] cannot listen again on port {self.port}: {error}")
                        return
                    time.sleep(0.05)

    # -- observation -----------------------------------------------------------

    @property
    def records(self) -> list[dict[str, Any]]:
        """Every accepted log record, in arrival order, exactly as received."""
        with self._lock:
            return list(self._records)

    @property
    def records_in_time_order(self) -> list[dict[str, Any]]:
        """Every accepted log record as the Engine shows them: by ``timestamp``, arrival order among equals.

        Batches of records may be in flight side by side (``SPLIGHT_RUNNER_EXPORT_CONCURRENCY``),
        so arrival order is not the order they were logged in; their timestamps are.
        """
        return sorted(self.records, key=lambda record: record.get("timestamp") or "")

    @property
    def statuses(self) -> list[tuple[str, str]]:
        """Every accepted ``(process id, status)``, in order."""
        with self._lock:
            return list(self._statuses)

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request to a non-``/_dev/`` path, in the order answered."""
        with self._lock:
            return list(self._requests)

    @property
    def connections(self) -> int:
        """TCP connections accepted so far (control requests included)."""
        return self._connections.count

    def wait_for(self, predicate: Callable[[DevEngine], bool], timeout: float = 10.0) -> bool:
        """Wait until ``predicate(self)`` holds; ``False`` if ``timeout`` passed first.

        The predicate runs without any lock held, so it may itself talk to the
        engine; it is evaluated again after every answered request (and at
        least every 0.1 s, for conditions that do not depend on requests).
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                seen = self._answered
            if predicate(self):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._lock:
                if self._answered == seen:
                    self._lock.wait(min(remaining, 0.1))

    def clear(self) -> None:
        """Forget received records, statuses and requests (faults stay as they are)."""
        with self._lock:
            self._records.clear()
            self._statuses.clear()
            self._requests.clear()
            self._answered += 1
            self._lock.notify_all()

    # -- faults ----------------------------------------------------------------

    def fail_next(
        self,
        n: int,
        status: int = 503,
        *,
        retry_after: str | None = None,
        endpoint: str = "any",
    ) -> None:
        """Answer the next ``n`` requests to ``endpoint`` with ``status`` and store nothing.

        ``endpoint`` is ``"logs"``, ``"status"`` or ``"any"``. The answer is
        ``{"detail": ...}`` with ``Retry-After: retry_after`` when given. It
        comes before authentication, as from a load balancer in front.
        """
        if endpoint not in _ENDPOINTS:
            raise ValueError(f"endpoint must be one of {', '.join(_ENDPOINTS)}")
        if not 100 <= status <= 599:
            raise ValueError("status must be an HTTP status code")
        if n > 0:
            with self._lock:
                self._failures.append(_Failure(n, status, retry_after, endpoint))

    def set_delay(self, seconds: float) -> None:
        """Wait ``seconds`` before handling each Engine request (0 to stop).

        The body is already read; a client that gives up meanwhile may still
        have its records stored, as with a slow real Engine.
        """
        with self._lock:
            self._delay = max(0.0, seconds)

    def refuse_for(self, seconds: float) -> None:
        """Close the listening socket and open connections now; listen again on the same port later."""
        self._refuse(seconds)

    def _refuse(self, seconds: float, spare: socket.socket | None = None) -> None:
        with self._life:
            if not self._started or self._stopped:
                return
            if self._rebind is not None:
                self._rebind.cancel()
            self._stop_serving(spare)
            timer = threading.Timer(seconds, self._come_back)
            timer.daemon = True
            self._rebind = timer
            timer.start()

    def close_mid_response(self, n: int) -> None:
        """For the next ``n`` Engine requests: read the body, send half a status line, close."""
        with self._lock:
            self._cuts += max(0, n)

    def reset_faults(self) -> None:
        """Cancel pending failures, cuts and the delay."""
        with self._lock:
            self._failures.clear()
            self._cuts = 0
            self._delay = 0.0

    # -- request handling (called from handler threads) ------------------------

    def _endpoint(self, path: str) -> tuple[str | None, str | None]:
        if path == self._logs_path:
            return "logs", None
        match = self._status_path.match(path)
        if match is not None:
            return "status", unquote(match.group(1))
        return None, None

    def _take_fault(self, endpoint: str) -> _Answer | None:
        with self._lock:
            if self._cuts > 0:
                self._cuts -= 1
                return _Answer(0, cut=True)
            for failure in self._failures:
                if failure.endpoint in ("any", endpoint):
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        self._failures.remove(failure)
                    headers = {}
                    if failure.retry_after is not None:
                        headers["Retry-After"] = failure.retry_after
                    detail = f"injected failure ({failure.status}) by the dev engine"
                    return _Answer(failure.status, {"detail": detail}, headers)
        return None

    def _serve(self, method: str, path: str, headers: Any, body: bytes) -> tuple[_Answer, int]:
        """Answer one Engine request; store what it carries if it is accepted."""
        endpoint, process_id = self._endpoint(path)
        if endpoint is None:
            return _Answer(404, {"detail": "Not found."}), 0
        if method != "POST":
            return _Answer(405, {"detail": f'Method "{method}" not allowed.'}, {"Allow": "POST"}), 0
        payload: Any = None
        count = 0
        if endpoint == "logs":
            try:
                payload = json.loads(body)
            except (ValueError, RecursionError):
                payload = None
            if isinstance(payload, dict) and isinstance(payload.get("records"), list):
                count = len(payload["records"])
        with self._lock:
            delay = self._delay
        if delay:
            time.sleep(delay)
        fault = self._take_fault(endpoint)
        if fault is not None:
            return fault, count
        authorization = headers.get_all("Authorization") or []
        if not authorization:
            return self._unauthorized("Authentication credentials were not provided."), count
        if len(authorization) != 1 or authorization[0] != self._authorization:
            return self._unauthorized("Invalid credentials."), count
        content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        expected = _JSON if endpoint == "logs" else _FORM
        if content_type != expected:
            detail = f'Unsupported media type "{content_type}" in request; use {expected}.'
            return _Answer(415, {"detail": detail}), count
        try:
            if endpoint == "logs":
                if payload is None:
                    raise _Invalid("body is not valid JSON")
                records = validate_logs_payload(payload)
                self._accept_records(records)
                return _Answer(201, {"accepted": len(records)}), count
            status = validate_status_form(body)
        except _Invalid as invalid:
            return _Answer(400, {"detail": str(invalid)}), count
        assert process_id is not None
        self._accept_status(process_id, status)
        return _Answer(200, {"id": process_id, "deployment_status": status}), 0

    @staticmethod
    def _unauthorized(detail: str) -> _Answer:
        return _Answer(401, {"detail": detail}, {"WWW-Authenticate": "Splight"})

    def _accept_records(self, records: list[dict[str, Any]]) -> None:
        with self._lock:
            self._records.extend(records)
            if self._record_file is not None:
                # One write and one flush for the request's records, before it is answered: a
                # line per record, each flushed, cost the stand-in more than the runner sending them.
                self._write_lines([_log_line(record) for record in records])
            if self._out is not None:
                for record in records:
                    self._print(_format_record(record))

    def _accept_status(self, process_id: str, status: str) -> None:
        with self._lock:
            self._statuses.append((process_id, status))
            self._write_lines([{"kind": "status", "id": process_id, "status": status}])
            self._print(f"[status] {process_id} -> {status}")

    def _log_request(self, request: ReceivedRequest, answer: _Answer) -> None:
        with self._lock:
            self._requests.append(request)
            self._answered += 1
            if answer.cut:
                self._print(f"[fault] {request.method} {request.path}: connection cut mid-answer")
            elif answer.status >= 400:
                detail = answer.payload.get("detail") if isinstance(answer.payload, dict) else ""
                self._print(f"[rejected] {answer.status} {request.method} {request.path}: {detail}")
            self._lock.notify_all()

    def _write_lines(self, lines: list[dict[str, Any]]) -> None:
        if self._record_file is not None:
            encode = _RECORD_LINE.encode
            self._record_file.write("".join([encode(line) + "\n" for line in lines]))
            self._record_file.flush()

    def _print(self, text: str) -> None:
        out = self._out
        if out is None:
            return
        with self._lock:
            try:
                out.write(text + "\n")
            except UnicodeEncodeError:
                encoding = getattr(out, "encoding", None) or "ascii"
                out.write(text.encode(encoding, "replace").decode(encoding) + "\n")
            except (OSError, ValueError):
                return
            with contextlib.suppress(OSError, ValueError):
                out.flush()

    # -- control over HTTP -----------------------------------------------------

    def _control(self, method: str, path: str, body: bytes, sock: socket.socket) -> _Answer:
        routes = {"/_dev/faults": "POST", "/_dev/received": "GET", "/_dev/clear": "POST"}
        if path not in routes:
            return _Answer(404, {"detail": "Not found."})
        if method != routes[path]:
            allowed = routes[path]
            return _Answer(405, {"detail": f'Method "{method}" not allowed.'}, {"Allow": allowed})
        if path == "/_dev/received":
            with self._lock:
                payload = {
                    "records": list(self._records),
                    "statuses": [list(item) for item in self._statuses],
                    "connections": self._connections.count,
                }
            return _Answer(200, payload)
        if path == "/_dev/clear":
            self.clear()
            return _Answer(200, {"ok": True})
        try:
            refuse = self._apply_faults(body)
        except _Invalid as invalid:
            return _Answer(400, {"detail": str(invalid)})
        if refuse is None:
            return _Answer(200, {"ok": True})
        # Stop listening before answering, so the caller sees refusals as soon as
        # it has the answer; its own connection is closed right after the answer.
        self._refuse(refuse, spare=sock)
        return _Answer(200, {"ok": True}, close=True)

    def _apply_faults(self, body: bytes) -> float | None:
        """Apply a ``/_dev/faults`` body, except ``refuse_for``, which is returned."""
        try:
            spec = json.loads(body or b"{}")
        except ValueError:
            raise _Invalid("body is not valid JSON") from None
        if not isinstance(spec, dict):
            raise _Invalid("body must be a JSON object")
        known = {
            "fail_next",
            "status",
            "retry_after",
            "endpoint",
            "delay",
            "refuse_for",
            "close_mid_response",
            "reset",
        }
        unknown = sorted(set(spec) - known)
        if unknown:
            raise _Invalid(f"unknown fields: {', '.join(unknown)}")

        def number(name: str, *, integer: bool) -> Any:
            value = spec[name]
            kinds = int if integer else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds) or value < 0:
                raise _Invalid(f"{name} must be a non-negative {'integer' if integer else 'number'}")
            return value

        retry_after = spec.get("retry_after")
        if retry_after is not None:
            if isinstance(retry_after, bool) or not isinstance(retry_after, (str, int, float)):
                raise _Invalid("retry_after must be a string or a number")
            retry_after = str(retry_after)
        endpoint = spec.get("endpoint", "any")
        if endpoint not in _ENDPOINTS:
            raise _Invalid(f"endpoint must be one of {', '.join(_ENDPOINTS)}")
        status = number("status", integer=True) if "status" in spec else 503
        if not 100 <= status <= 599:
            raise _Invalid("status must be an HTTP status code")
        fail_next = number("fail_next", integer=True) if "fail_next" in spec else 0
        delay = number("delay", integer=False) if "delay" in spec else None
        cuts = number("close_mid_response", integer=True) if "close_mid_response" in spec else 0
        refuse = number("refuse_for", integer=False) if "refuse_for" in spec else None
        if spec.get("reset"):
            self.reset_faults()
        self.fail_next(fail_next, status, retry_after=retry_after, endpoint=endpoint)
        if delay is not None:
            self.set_delay(delay)
        self.close_mid_response(cuts)
        return refuse


def _indented(text: str) -> Iterator[str]:
    for line in text.rstrip("\n").splitlines():
        yield "    " + line


#: Printed by :func:`run` before anything arrives: what the columns of the lines below are.
COLUMNS_LINE = (
    "columns: [logs] ID SENDER_TYPE LOGLEVEL FILENAME LOGGER: MESSAGE  tags=TAGS (when set), "
    "then further message and traceback lines indented | [status] ID -> STATUS | "
    "[rejected] HTTP_STATUS METHOD PATH: DETAIL"
)


def _format_record(record: dict[str, Any]) -> str:
    """One readable line per record; further message lines and the traceback indented."""
    first, *rest = record["message"].split("\n")
    line = (
        f"[logs] {record['id']} {record['sender_type']} {record['loglevel']:<8} "
        f"{record['filename']:<10} {record['name']}: {first}"
    )
    if record.get("tags") is not None:
        line += "  tags=" + json.dumps(record["tags"], ensure_ascii=False)
    lines = [line]
    if rest:
        lines.extend(_indented("\n".join(rest)))
    if record["traceback"]:
        lines.extend(_indented(record["traceback"]))
    return "\n".join(lines)


def run(
    host: str,
    port: int,
    *,
    access_id: str,
    secret_key: str,
    api_version: str,
    record_path: Path | None,
    quiet: bool,
) -> int:
    """Serve in the foreground until SIGINT/SIGTERM (``splight-runner dev-engine``); returns 0.

    Returns 2, with one line on stderr, when it cannot listen or open ``record_path``.
    """
    engine = DevEngine(
        host,
        port,
        access_id=access_id,
        secret_key=secret_key,
        api_version=api_version,
        record_path=record_path,
        out=None if quiet else sys.stdout,
    )
    # A stop signal that arrives between the first printed line and wait_for_stop_signal's own
    # handlers (a loaded machine) still stops it cleanly: noted here, seen at the next tick.
    early_stop = threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: early_stop.set())

    def stopped_early() -> None:
        if early_stop.is_set():
            raise _StoppedEarly

    try:
        try:
            engine.start()
        except OSError as error:
            failed = f"open {record_path}" if error.filename else f"listen on {host}:{port}"
            print(f"dev-engine: cannot {failed}: {error.strerror or error}", file=sys.stderr)
            return 2
        print(f"dev-engine listening on {engine.url} (access id {access_id})", flush=True)
        if not quiet:
            print(COLUMNS_LINE, flush=True)
        try:
            wait_for_stop_signal(stopped_early)
        except _StoppedEarly:
            pass
        finally:
            engine.stop()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


class _StoppedEarly(Exception):
    """A stop signal came before :func:`wait_for_stop_signal` installed its handlers."""
