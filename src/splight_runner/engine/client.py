"""The two Engine API calls, one HTTP attempt per call, with failures classified.

Why one attempt: the exporter inside the component, the supervisor and the
gateway all make these calls but need different retry policies (the exporter
backs off and keeps its queue, the gateway answers 503 so the collector keeps
its queue). So this module only makes the attempt and says, through
:class:`EngineError`, whether another attempt could succeed and when;
:func:`retry_delay` is the shared backoff arithmetic and :func:`pack_records`
the shared batching, so every caller respects the same per-POST limits.

Only the standard library is used: this module runs inside the component's
process and must not add to (or conflict with) its dependencies.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from splight_runner import __version__, _sockets, urls
from splight_runner.bootstrap.splight_capture.values import valid_text
from splight_runner.engine import alarms, http11
from splight_runner.engine.proxies import proxy_for
from splight_runner.engine.records import as_mapping, json_encoder
from splight_runner.settings import EngineSettings

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "MAX_BYTES_PER_POST",
    "MAX_RECORDS_PER_POST",
    "MAX_RETRY_AFTER",
    "RETRYABLE_STATUSES",
    "EngineClient",
    "EngineError",
    "is_retryable",
    "pack_records",
    "parse_retry_after",
    "retry_delay",
]

#: Hard limits of one logs/write POST: records in it, and bytes of its body.
MAX_RECORDS_PER_POST = 1000
MAX_BYTES_PER_POST = 1024 * 1024
#: Answers after which the same request may succeed later: timeouts, throttling, server errors
#: (any other 4xx is final and never retried).
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: Longest wait :func:`retry_delay` accepts from a ``Retry-After`` header, so a
#: misconfigured proxy cannot stall delivery for hours.
MAX_RETRY_AFTER = 300.0
#: Longest ``detail`` kept in an :class:`EngineError`; the text ends up in log lines.
MAX_DETAIL_CHARS = 200

_USER_AGENT = f"splight-runner/{__version__}"
_JSON = "application/json"
_FORM = "application/x-www-form-urlencoded"
_RECORDS_OPEN = b'{"records":['
_RECORDS_CLOSE = b"]}"
#: Fields shortened, in this order, when one record alone is too big for a POST.
_TRUNCATABLE_FIRST = ("message", "traceback")
#: Characters of each of those kept while the other can still be shortened instead.
_KEEP_WHILE_OTHERS_GIVE = 1024


def is_retryable(status: int | None) -> bool:
    """Whether an answer (``None``: no answer at all) may succeed if sent again."""
    return status is None or status in RETRYABLE_STATUSES


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date.

    Returns ``None`` when the header is absent or unreadable (the caller then
    uses its own backoff); a date in the past means "now" (``0.0``).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        import email.utils  # only for an HTTP-date Retry-After: rare, and milliseconds to import

        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:  # RFC 9110 dates are always GMT
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _one_line(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """Collapse whitespace and cut to ``limit`` characters: details go into log lines."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _restore_error(detail: str, status: int | None, retry_after: float | None, retryable: bool) -> EngineError:
    return EngineError(detail, status=status, retry_after=retry_after, retryable=retryable)


class EngineError(Exception):
    """A call the Engine did not accept, or could not be asked.

    ``status`` is the HTTP status, ``None`` when there was no answer (refused,
    reset, timed out, malformed answer). ``detail`` is the Engine's
    ``{"detail": ...}`` text or a short description, one line, at most
    :data:`MAX_DETAIL_CHARS` characters, and never the secret key (the client
    scrubs it before building the error). ``retry_after`` is the server's
    ``Retry-After`` in seconds, if it sent a readable one. ``retryable`` says
    whether sending the same request again may succeed.
    """

    status: int | None
    detail: str
    retry_after: float | None
    retryable: bool

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.status = status
        self.detail = _one_line(detail)
        self.retry_after = retry_after
        self.retryable = is_retryable(status) if retryable is None else retryable
        super().__init__(self.detail)

    def __str__(self) -> str:
        if self.status is None:
            return self.detail or "no answer from the Engine"
        from http import HTTPStatus  # an enum of every status: built only when an error is shown

        try:
            head = f"{self.status} {HTTPStatus(self.status).phrase}"
        except ValueError:
            head = str(self.status)
        if not self.detail or self.detail == head.partition(" ")[2]:
            return head
        return f"{head}: {self.detail}"

    def __repr__(self) -> str:
        return (
            f"EngineError(status={self.status!r}, detail={self.detail!r}, "
            f"retryable={self.retryable!r}, retry_after={self.retry_after!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments would otherwise be lost when pickled
        # (for example when handed to another process).
        return (_restore_error, (self.detail, self.status, self.retry_after, self.retryable))


def _describe_failure(error: BaseException, where: str, timeout: float, stage: str) -> str:
    """Short, secret-free text for an error raised before a complete answer arrived."""
    if isinstance(error, ConnectionRefusedError):
        return f"connection refused by {where}"
    if isinstance(error, TimeoutError):
        if stage == "connect":
            return f"timed out connecting to {where} after {timeout:g}s"
        return f"no answer from {where} within {timeout:g}s"
    if isinstance(error, _sockets.gaierror):
        return f"cannot resolve {where}: {error.strerror or error}"
    ssl = sys.modules.get("ssl")  # imported for an https Engine only; without it no error is a TLS error
    if ssl is not None and isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS certificate of {where} not trusted: {error.verify_message or error.reason}"
    if ssl is not None and isinstance(error, ssl.SSLError):
        return f"TLS error with {where}: {error.reason or type(error).__name__}"
    if isinstance(error, http11.RemoteDisconnected):
        return f"{where} closed the connection without answering"
    if isinstance(error, http11.IncompleteAnswer):
        return f"{where} closed the connection in the middle of its answer"
    if isinstance(error, http11.ProtocolError):
        return f"malformed answer from {where} ({error})"
    if isinstance(error, ConnectionResetError):
        return f"connection reset by {where}"
    if isinstance(error, OSError):
        return f"connection error with {where}: {error.strerror or error}"
    return f"error talking to {where}: {type(error).__name__}"


def _connection_dropped(sock: _sockets.Socket) -> bool:
    """Whether an idle keep-alive socket was closed (or written to) by the server.

    An idle connection has nothing to read; if it is readable, the server sent
    EOF (idle timeout, restart) or garbage, and either way it cannot be reused.
    """
    try:
        pending = getattr(sock, "pending", None)  # TLS: bytes already decrypted count too
        if pending is not None and pending():
            return True
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class EngineClient:
    """Makes the Engine's two calls over one persistent keep-alive connection.

    Each call is exactly one attempt (plus one silent reconnect when a reused
    keep-alive connection turns out to have been closed by the server before it
    answered anything) and either returns (2xx) or raises :class:`EngineError`.
    Redirects are not followed: following one could carry the Authorization
    header to another host.

    Not thread-safe, by design: a connection carries one request at a time, so
    each thread that sends owns its own client. After ``os.fork()`` the child
    must not use the parent's socket; :meth:`after_fork` drops it, and each call
    also notices a changed process id by itself.

    ``timeout`` bounds a whole call: connecting, sending and reading the answer
    together, not each read (a server that drips one byte at a time cannot hold
    a call longer). A call's ``deadline`` (a :func:`time.monotonic` time) can
    bound it further; at the deadline a watchdog shuts the socket down, which
    ends any read or write in progress.

    The client never writes to (or closes) a file descriptor it did not open:
    the device and inode of its socket are recorded at connect and checked
    before every use, so a connection whose descriptor number the process
    closed and reused (``os.closerange``, ``dup2``, a daemonizing library) is
    forgotten without a byte written, and a new one is opened.
    """

    def __init__(self, settings: EngineSettings, *, timeout: float = 10.0) -> None:
        parts = urls.split(settings.host)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("Engine host must be an http(s) URL")
        self._settings = settings
        self._timeout = timeout
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._where = f"{self._host}:{self._port}"
        self._proxy = proxy_for(parts.scheme, self._host, self._port)
        self._ssl_context: Any = None
        self._conn: http11.Connection | None = None
        #: (device, inode) of the connection's socket, recorded when it was opened.
        self._identity: tuple[int, int] | None = None
        self._pid = os.getpid()
        self._secrets = tuple(s for s in (settings.authorization, settings.secret_key) if s)
        #: The watchdog of the call in progress, for :meth:`cut_at` (the one use from another thread).
        self._watchdog: _Watchdog | None = None

    # -- the two calls ---------------------------------------------------------

    def write_logs(self, body: bytes, *, deadline: float | None = None) -> None:
        """POST an encoded ``{"records": [...]}`` body (see :func:`pack_records`).

        ``deadline``: a :func:`time.monotonic` time the call must not outlast.
        """
        self._post(self._settings.logs_path, body, _JSON, deadline)

    def cut_at(self, deadline: float) -> None:
        """Bring the deadline of the call in progress (if any) forward to ``deadline``.

        Safe from another thread: an exit deadline that a stop signal shortened
        must also end the call already waiting on a slow Engine.
        """
        watchdog = self._watchdog
        if watchdog is not None:
            watchdog.bring_forward(deadline - time.monotonic())

    def update_status(self, process_id: str, status: str, *, deadline: float | None = None) -> None:
        """POST ``deployment_status=<status>`` for ``process_id`` (``deadline`` as in :meth:`write_logs`)."""
        path = self._settings.status_path(urls.quote(process_id))
        body = urls.form_body([("deployment_status", status)]).encode("ascii")
        self._post(path, body, _FORM, deadline)

    # -- connection lifecycle --------------------------------------------------

    def close(self) -> None:
        """Close the connection; the next call opens a new one.

        A descriptor that no longer holds the socket this client opened is let
        go of without being closed: it belongs to someone else now.
        """
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if conn.sock is not None and not self._still_ours(conn.sock):
            self._let_go(conn)
            return
        conn.close()

    def after_fork(self) -> None:
        """Forget a connection inherited from the parent process; the next call opens its own.

        Only this process's copy of the file descriptor is closed: no shutdown,
        no TLS close_notify, nothing sent, so the parent's connection is untouched.
        """
        conn, self._conn = self._conn, None
        self._pid = os.getpid()
        if conn is not None:
            if conn.sock is not None and not self._still_ours(conn.sock):
                self._let_go(conn)
                return
            with contextlib.suppress(Exception):
                conn.close()

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------

    def _new_connection(self) -> http11.Connection:
        if self._https and self._ssl_context is None:
            import ssl  # only for an https Engine: milliseconds of start-up otherwise

            self._ssl_context = ssl.create_default_context()
        tls = self._ssl_context if self._https else None
        if self._proxy is None:
            return http11.Connection(self._host, self._port, timeout=self._timeout, tls=tls)
        proxy_host, proxy_port, tunnel_headers = self._proxy
        return http11.Connection(
            proxy_host, proxy_port, timeout=self._timeout, tls=tls, tunnel=(self._host, self._port, tunnel_headers)
        )

    def _connection(self) -> tuple[http11.Connection, bool]:
        """The connection to use and whether it already carried a request."""
        if os.getpid() != self._pid:
            self.after_fork()
        conn = self._conn
        if conn is not None and conn.sock is not None:
            if not self._still_ours(conn.sock):
                # The process closed our descriptor (closerange, dup2) and the number may now
                # be someone else's socket or file: not one byte may go there.
                self._conn = None
                self._let_go(conn)
                conn = None
            elif _connection_dropped(conn.sock):
                self.close()
                conn = None
        if conn is None:
            conn = self._conn = self._new_connection()
        return conn, conn.sock is not None

    @staticmethod
    def _fd_identity(sock: _sockets.Socket) -> tuple[int, int] | None:
        try:
            status = os.fstat(sock.fileno())
        except (OSError, ValueError):
            return None
        return status.st_dev, status.st_ino

    def _still_ours(self, sock: _sockets.Socket) -> bool:
        """Whether ``sock``'s descriptor still holds the socket opened by :meth:`_connect`."""
        identity = self._fd_identity(sock)
        return identity is not None and identity == self._identity

    def _may_shut_down(self, sock: _sockets.Socket) -> bool:
        """The watchdog's check: a socket still connecting (no identity yet) or still ours."""
        return self._identity is None or self._still_ours(sock)

    def _let_go(self, conn: http11.Connection) -> None:
        """Forget ``conn`` without closing, shutting down or writing to its descriptor."""
        sock, conn.sock = conn.sock, None
        self._identity = None
        if sock is not None:
            with contextlib.suppress(Exception):
                _sockets.Socket.detach(sock)  # the socket object now holds no descriptor at all
        with contextlib.suppress(Exception):
            conn.close()  # what is left (a response object) holds no descriptor of its own

    def _connect(self, conn: http11.Connection) -> None:
        conn.connect()
        self._identity = self._fd_identity(conn.sock) if conn.sock is not None else None

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _post(self, path: str, body: bytes, content_type: str, deadline: float | None = None) -> None:
        headers = {
            "Authorization": self._settings.authorization,
            "User-Agent": _USER_AGENT,
            "Accept": _JSON,
            "Content-Type": content_type,
            "Content-Length": str(len(body)),
        }
        limit = time.monotonic() + self._timeout
        by_deadline = deadline is not None and deadline < limit
        if by_deadline:
            limit = deadline  # type: ignore[assignment]
        for attempt in (0, 1):
            remaining = limit - time.monotonic()
            if remaining <= 0:
                raise EngineError(f"no time left to call {self._where} (deadline passed)", retryable=True)
            conn, reused = self._connection()
            stage = "connect" if conn.sock is None else "send"
            watchdog = self._watchdog = _Watchdog(conn, remaining, self._may_shut_down)
            try:
                if conn.sock is None:
                    conn.timeout = remaining
                    self._connect(conn)
                    stage = "send"
                if conn.sock is not None:
                    conn.sock.settimeout(max(0.001, limit - time.monotonic()))
                conn.request("POST", path, body, headers)
                stage = "answer"
                response = conn.getresponse()
                data = response.body
            except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as error:
                fired = watchdog.cancel()
                self.close()
                if reused and attempt == 0 and stage in ("send", "answer") and not fired:
                    # The server closed an idle keep-alive connection just as we
                    # reused it; nothing was answered, so open a fresh one.
                    continue
                raise self._failure(error, stage, fired, by_deadline) from None
            except (OSError, http11.ProtocolError) as error:
                fired = watchdog.cancel()
                self.close()
                raise self._failure(error, stage, fired, by_deadline) from None
            except BaseException:
                watchdog.cancel()
                self.close()  # half a request on the connection: never reuse it
                raise
            if watchdog.cancel():
                self.close()  # shut down under the answer: never reuse it
            break
        if response.will_close:
            self.close()
        if 200 <= response.status < 300:
            return
        raise EngineError(
            self._detail(response, data),
            status=response.status,
            retry_after=parse_retry_after(response.getheader("Retry-After")),
        )

    def _failure(self, error: BaseException, stage: str, cut: bool = False, by_deadline: bool = False) -> EngineError:
        if by_deadline and (cut or isinstance(error, TimeoutError)):
            text = f"no complete answer from {self._where} before the call's deadline"
        elif cut:
            text = f"no complete answer from {self._where} within {self._timeout:g}s"
        else:
            text = _describe_failure(error, self._where, self._timeout, stage)
        return EngineError(self._scrub(text), status=None, retryable=True)

    def _detail(self, response: http11.Answer, data: bytes) -> str:
        """The Engine's ``detail`` text, else the body's start, else the reason phrase."""
        text = data.decode("utf-8", errors="replace").strip()
        detail: str | None = None
        if text.startswith(("{", "[")):
            import json

            try:
                parsed = json.loads(text)
            except (ValueError, RecursionError):
                parsed = None
            if isinstance(parsed, dict) and "detail" in parsed:
                value = parsed["detail"]
                detail = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            elif parsed is not None:
                detail = json.dumps(parsed, ensure_ascii=False)
        if detail is None:
            content_type = (response.getheader("Content-Type") or "").lower()
            detail = "" if "html" in content_type else text
        if not detail:
            detail = response.reason or ""
        # Scrub before cutting, so a secret straddling the cut cannot leave a prefix behind.
        return _one_line(self._scrub(detail))


class _Watchdog:
    """Shuts a connection's socket down when a call's time is up, ending any blocked read or write.

    Per-step socket timeouts cannot bound a call: a server that answers one byte
    every half second never lets a read time out. ``shutdown`` on the socket
    (not ``close``: the descriptor stays ours until the caller closes it) makes
    the blocked call return at once. The time is kept by the process's one
    alarm thread (:mod:`.alarms`), not a thread per call.
    """

    __slots__ = ("_alarm", "_conn", "_due", "_fired", "_lock", "_ours")

    def __init__(self, conn: http11.Connection, seconds: float, ours: Callable[[Any], bool]) -> None:
        self._conn = conn
        self._ours = ours
        self._fired = False
        self._lock = threading.Lock()
        self._due = time.monotonic() + seconds
        # None when no thread can keep the time (interpreter shutdown on Python 3.12+): the call is
        # then bounded per step by its socket timeout, set to what is left.
        self._alarm = alarms.CALLS.set(seconds, self._fire)

    def _fire(self) -> None:
        with self._lock:
            if self._conn is None:
                return
            self._fired = True
            sock = self._conn.sock
            if sock is not None and self._ours(sock):
                with contextlib.suppress(OSError, ValueError):
                    _sockets.Socket.shutdown(sock, _sockets.SHUT_RDWR)

    def bring_forward(self, seconds: float) -> None:
        """Cut the call in ``seconds`` from now instead, if that is sooner (from any thread)."""
        due = time.monotonic() + seconds
        with self._lock:
            if self._conn is None or self._fired or due >= self._due:
                return
            alarm = alarms.CALLS.set(seconds, self._fire)
            if alarm is None:  # no thread can keep the time (interpreter shutdown): the old alarm stays
                return
            if self._alarm is not None:
                self._alarm.cancel()
            self._alarm = alarm
            self._due = due

    def cancel(self) -> bool:
        """Stop watching; True when the watchdog had already cut the call."""
        if self._alarm is not None:
            self._alarm.cancel()
        with self._lock:
            self._conn = None
            return self._fired


# -- batching ------------------------------------------------------------------


#: Depth at which :func:`_json_safe` cuts nested containers (and so any cycle).
MAX_JSON_DEPTH = 32


def _safe_str(value: Any) -> str:
    """``str(value)``, or a placeholder naming its type when that raises."""
    try:
        return str(value)
    except Exception:
        try:
            name = type(value).__name__
        except Exception:
            name = "object"
        return f"<unprintable {name}>"


def _json_safe(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` that strict JSON can carry (no NaN, str keys, no cycles)."""
    if depth > MAX_JSON_DEPTH:
        return "<nested too deep>"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        try:
            items = list(value.items())
        except Exception:
            return _safe_str(value)
        return {(k if isinstance(k, str) else _safe_str(k)): _json_safe(v, depth + 1) for k, v in items}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, depth + 1) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return _safe_str(value)


def _utf8(text: str) -> bytes:
    """``text`` as UTF-8; a lone surrogate (``os.fsdecode`` of a non-UTF-8 name) becomes U+FFFD.

    Such text cannot be encoded at all; without this, one record's file name would sink its batch.
    """
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return valid_text(text).encode("utf-8")


def _encode(record: Mapping[str, Any] | bytes) -> bytes:
    """One record as compact UTF-8 JSON (a record already made so, ``bytes``, as it is).

    A record must never sink a whole batch: values JSON cannot carry (a
    ``datetime`` in tags, NaN, a cycle) become strings instead of errors.
    """
    if type(record) is bytes:
        return record
    try:
        text = json_encoder().encode(record)
    except Exception:  # TypeError, ValueError, RecursionError, or a value whose str() raises
        import json

        text = json.dumps(_json_safe(record), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return _utf8(text)


def _records_body(records: Sequence[Mapping[str, Any] | bytes]) -> bytes:
    """``{"records":[...]}`` of records that fit one POST: one encoder call for the dicts when all are
    dicts (half the cost of one per record), the JSON already made joined as it is."""
    made = [record for record in records if type(record) is bytes]
    if not made:
        return _utf8(json_encoder().encode({"records": list(records)}))
    if len(made) < len(records):
        made = [_encode(record) for record in records]
    return _RECORDS_OPEN + b",".join(made) + _RECORDS_CLOSE


def _marker(removed: int) -> str:
    return f"…[truncated by splight-runner: {removed} bytes]"


def _cut(original: str, keep: int) -> str:
    """The first ``keep`` characters of ``original`` and a marker counting the bytes removed."""
    prefix = original[:keep]
    return prefix + _marker(len(_utf8(original)) - len(_utf8(prefix)))


def _shorten_field(record: dict[str, Any], field: str, original: str, budget: int, floor: int) -> bytes | None:
    """``record`` encoded with ``original`` cut as little as possible to fit ``budget`` bytes.

    Keeps at least ``floor`` characters, else returns ``None``. Binary search
    over the kept length works because the encoded size never shrinks as more
    is kept (one more kept character adds at least the byte that a shorter
    marker count could save).
    """

    def encoded(keep: int) -> bytes:
        return _encode({**record, field: _cut(original, keep)})

    best = encoded(floor)
    if len(best) > budget:
        return None
    low, high = floor, len(original) - 1
    while low < high:
        middle = (low + high + 1) // 2
        candidate = encoded(middle)
        if len(candidate) <= budget:
            low, best = middle, candidate
        else:
            high = middle - 1
    return best


def _fit_record(record: Mapping[str, Any], encoded: bytes, budget: int) -> bytes:
    """Shrink a record that alone exceeds ``budget`` bytes, visibly.

    ``message`` gives first, then ``traceback``; while the other can still
    give, each keeps its first :data:`_KEEP_WHILE_OTHERS_GIVE` characters, so a
    huge traceback does not wipe out a short message. Then both may go
    entirely, then ``tags`` (replaced by a marker string), then any other
    string field, longest first. A record that still cannot fit is returned as
    small as it got: the Engine decides (413) rather than the record silently
    vanishing here.
    """
    current: dict[str, Any] = dict(record)
    for field in _TRUNCATABLE_FIRST:
        original = record.get(field)
        if not isinstance(original, str) or len(original) <= _KEEP_WHILE_OTHERS_GIVE:
            continue
        fitted = _shorten_field(current, field, original, budget, _KEEP_WHILE_OTHERS_GIVE)
        if fitted is not None:
            return fitted
        current[field] = _cut(original, _KEEP_WHILE_OTHERS_GIVE)
    others = sorted(
        (k for k, v in record.items() if isinstance(v, str) and k not in (*_TRUNCATABLE_FIRST, "tags")),
        key=lambda k: -len(record[k]),
    )
    for field in (*_TRUNCATABLE_FIRST, "tags", *others):
        original = record.get(field)
        if field == "tags" and original is not None and not isinstance(original, str):
            size = len(_encode({"tags": original})) - len(b'{"tags":}')
            current["tags"] = _marker(size)
            encoded = _encode(current)
            if len(encoded) <= budget:
                return encoded
            continue
        if not isinstance(original, str) or not original:
            continue
        fitted = _shorten_field(current, field, original, budget, 0)
        if fitted is not None:
            return fitted
        current[field] = _cut(original, 0)
        encoded = _encode(current)
    return encoded


def pack_records(
    records: Sequence[Mapping[str, Any] | bytes],
    *,
    max_records: int = MAX_RECORDS_PER_POST,
    max_bytes: int = MAX_BYTES_PER_POST,
) -> list[tuple[bytes, int]]:
    """Split records into logs/write bodies, each within both per-POST limits.

    Returns ``(body, number_of_records)`` pairs, records kept in order, bodies
    as compact UTF-8 JSON ``{"records":[...]}``. Every record lands in exactly
    one body (the counts add up to ``len(records)``); one that alone exceeds
    ``max_bytes`` is truncated with a visible marker (see :func:`_fit_record`).
    """
    if max_records < 1:
        raise ValueError("max_records must be at least 1")
    overhead = len(_RECORDS_OPEN) + len(_RECORDS_CLOSE)
    if max_bytes <= overhead:
        raise ValueError(f"max_bytes must be more than {overhead}")
    budget = max_bytes - overhead
    if 0 < len(records) <= max_records:
        # The usual case, a batch that fits one POST: one encoder call for all of it
        # (half the cost of one per record). Anything unusual takes the careful path.
        try:
            body = _records_body(records)
        except Exception:
            body = b""
        if body and len(body) <= max_bytes:
            return [(body, len(records))]
    bodies: list[tuple[bytes, int]] = []
    chunk: list[bytes] = []
    size = 0  # encoded records plus separating commas

    def flush() -> None:
        nonlocal chunk, size
        if chunk:
            bodies.append((_RECORDS_OPEN + b",".join(chunk) + _RECORDS_CLOSE, len(chunk)))
            chunk, size = [], 0

    for record in records:
        encoded = _encode(record)
        if len(encoded) > budget:
            encoded = _fit_record(as_mapping(record), encoded, budget)
        extra = len(encoded) + (1 if chunk else 0)
        if chunk and (len(chunk) >= max_records or size + extra > budget):
            flush()
            extra = len(encoded)
        chunk.append(encoded)
        size += extra
    flush()
    return bodies


# -- backoff -------------------------------------------------------------------


def retry_delay(attempt: int, retry_after: float | None = None, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry).

    Without ``retry_after``: exponential backoff with full jitter, uniform in
    ``[0, min(cap, base * 2**attempt)]``, so many runners that failed together
    do not come back together. With it: the server's wish is honoured (never
    earlier) plus up to ``base`` seconds of jitter, but at most
    :data:`MAX_RETRY_AFTER` so a bad header cannot stall delivery for hours.
    """
    import random  # here: only a failing Engine needs it, and it costs every start-up a millisecond

    if retry_after is not None and math.isfinite(retry_after):
        wait = max(0.0, retry_after) + random.uniform(0.0, base)
        return min(wait, MAX_RETRY_AFTER)
    ceiling = min(cap, base * 2.0 ** min(max(attempt, 0), 64))
    return random.uniform(0.0, ceiling)
