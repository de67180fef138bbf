"""One HTTP/1.1 connection: a request out, its whole answer in — what the Engine's two calls need.

Why not ``http.client``: it imports ``email`` to parse headers (and ``ssl``
whether or not the URL is ``https``), which made it a third of the runner's
start-up CPU, paid by every component, idle or not. The Engine calls are POSTs
with small answers; this module speaks the part of HTTP/1.1 they use and
bounds what a broken or hostile server can make it hold (a line, the number
of headers, the body).

Answers are read whole (``Content-Length``, chunked, or until the server
closes), 1xx interim answers skipped. Timeouts are the socket's: the caller
sets them, and shuts the socket down to end a call that takes too long.
"""

from __future__ import annotations

from collections.abc import Mapping

from splight_runner import _sockets
from splight_runner._socket_input import SocketInput

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Longest status line, header line or chunk-size line accepted.
MAX_LINE = 65536
#: Most headers in one answer.
MAX_HEADERS = 100
#: Largest answer body kept (the Engine's answers are a few hundred bytes).
MAX_BODY = 8 * 1024 * 1024
_NO_BODY = frozenset({204, 304})


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.x, or exceeds the limits above."""


class IncompleteAnswer(ProtocolError):
    """The server closed the connection in the middle of its answer."""


class RemoteDisconnected(ConnectionResetError):
    """The server closed the connection before the first byte of an answer.

    A connection error (not a protocol error): it is what a keep-alive
    connection the server let go of looks like when it is reused.
    """


class Answer:
    """A complete answer: status, reason phrase, headers (names lower-cased), body, and
    whether the connection can carry another request."""

    __slots__ = ("body", "headers", "reason", "status", "will_close")

    def __init__(self, status: int, reason: str, headers: dict[str, str], body: bytes, will_close: bool) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.will_close = will_close

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


def _line(reader: SocketInput) -> bytes:
    """Up to and including the next LF; what is left at the end of the stream (maybe nothing)."""
    line = reader.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise ProtocolError("answer line too long")
    return line


def _exactly(reader: SocketInput, size: int) -> bytes:
    data = reader.read(size)
    if len(data) < size:
        raise IncompleteAnswer(f"{len(data)} of {size} bytes")
    return data


def _status_line(reader: SocketInput) -> tuple[int, str, bool]:
    """Status, reason, and whether the server speaks HTTP/1.0 (which closes unless told otherwise)."""
    line = _line(reader)
    if not line:
        raise RemoteDisconnected("closed without answering")
    version, _, rest = line.decode("iso-8859-1").rstrip("\r\n").partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {line[:40]!r}")
    return int(code), reason.strip(), version == "HTTP/1.0"


def _headers(reader: SocketInput) -> dict[str, str]:
    headers: dict[str, str] = {}
    last = None
    for _ in range(MAX_HEADERS + 1):
        line = _line(reader)
        if not line:
            raise IncompleteAnswer("closed in the headers")
        text = line.decode("iso-8859-1").rstrip("\r\n")
        if not text:
            return headers
        if text[0] in " \t" and last is not None:  # an obsolete folded line continues the previous value
            headers[last] += " " + text.strip()
            continue
        name, colon, value = text.partition(":")
        if not colon or not name or name != name.strip():
            raise ProtocolError(f"malformed header line: {text[:40]!r}")
        last = name.lower()
        value = value.strip()
        headers[last] = f"{headers[last]}, {value}" if last in headers else value
    raise ProtocolError(f"more than {MAX_HEADERS} headers")


def _chunked(reader: SocketInput) -> bytes:
    body = bytearray()
    while True:
        line = _line(reader)
        if not line.endswith(b"\n"):
            raise IncompleteAnswer("closed in a chunked body")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size {size_text[:20]!r}") from None
        if size < 0 or len(body) + size > MAX_BODY:
            raise ProtocolError("answer body too large")
        if size == 0:
            break
        body += _exactly(reader, size)
        if _exactly(reader, 2) != b"\r\n":
            raise ProtocolError("chunk not followed by CRLF")
    while True:  # trailers, up to the blank line
        line = _line(reader)
        if not line:
            raise IncompleteAnswer("closed in the trailers")
        if not line.strip():
            return bytes(body)


def read_answer(reader: SocketInput, method: str = "POST") -> Answer:
    """The next complete answer on ``reader``, 1xx interim answers skipped.

    A connection lost after the answer began is an :class:`IncompleteAnswer`, never a
    connection error: the server had the request, so it must not be sent again unnoticed.
    """
    try:
        status, reason, old = _status_line(reader)
    except ConnectionError as error:
        if reader.left_over() and not isinstance(error, RemoteDisconnected):
            raise IncompleteAnswer(f"connection lost in the status line ({type(error).__name__})") from None
        raise
    try:
        return _rest_of_answer(reader, method, status, reason, old)
    except ConnectionError as error:
        raise IncompleteAnswer(f"connection lost in the answer ({type(error).__name__})") from None


def _rest_of_answer(reader: SocketInput, method: str, status: int, reason: str, old: bool) -> Answer:
    headers = _headers(reader)
    while 100 <= status < 200:
        status, reason, old = _status_line(reader)
        headers = _headers(reader)
    connection = headers.get("connection", "").lower()
    will_close = "close" in connection or (old and "keep-alive" not in connection)
    if status in _NO_BODY or method == "HEAD":
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body = _chunked(reader)
    elif "content-length" in headers:
        text = headers["content-length"].split(",")[0].strip()
        if not text.isdigit():
            raise ProtocolError(f"bad Content-Length {text[:20]!r}")
        size = int(text)
        if size > MAX_BODY:
            raise ProtocolError("answer body too large")
        body = _exactly(reader, size)
    else:
        body, will_close = reader.read(MAX_BODY + 1), True
        if len(body) > MAX_BODY:
            raise ProtocolError("answer body too large")
    if reader.left_over():
        will_close = True  # bytes nobody asked for: the connection's state is unknown
    return Answer(status, reason, headers, body, will_close)


class Connection:
    """One connection to ``host:port``, opened by :meth:`connect`, optionally through a
    ``CONNECT`` tunnel and with TLS (``tls``: an ``ssl.SSLContext``).

    ``sock`` is the open socket (``None`` before :meth:`connect` and after :meth:`close`);
    it is set as soon as the TCP connection exists, so the caller can shut it down
    while the tunnel or the TLS handshake is still in progress.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float,
        tls: Any = None,
        tunnel: tuple[str, int, Mapping[str, str]] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.sock: Any = None
        self._tls = tls
        self._tunnel = tunnel
        self._reader: SocketInput | None = None

    @property
    def _peer(self) -> tuple[str, int]:
        """Where the requests go: the tunnel's far end when there is one."""
        return (self._tunnel[0], self._tunnel[1]) if self._tunnel is not None else (self.host, self.port)

    def connect(self) -> None:
        host = self.host
        # ASCII as bytes: a text host name would make getaddrinfo import the IDNA codec.
        address = host.encode("ascii") if host.isascii() else host
        sock = _sockets.connect(address, self.port, self.timeout)
        self.sock = sock
        try:
            if self._tunnel is not None:
                self._open_tunnel(sock, self._tunnel)
            if self._tls is not None:
                self.sock = sock = _sockets.for_tls(sock)
                sock = self._tls.wrap_socket(sock, server_hostname=self._peer[0])
                self.sock = sock
        except BaseException:
            self.close()
            raise
        self._reader = SocketInput(b"", sock)

    def _open_tunnel(self, sock: Any, tunnel: tuple[str, int, Mapping[str, str]]) -> None:
        host, port, headers = tunnel
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}", *(f"{k}: {v}" for k, v in headers.items())]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        answer = read_answer(SocketInput(b"", sock), method="HEAD")  # a CONNECT answer has no body to wait for
        if answer.status != 200:
            raise OSError(f"Tunnel connection failed: {answer.status} {answer.reason}".rstrip())

    def request(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> None:
        """Send one request, head and body in one write (no Nagle delay between them)."""
        host, port = self._peer
        default_port = 443 if self._tls is not None else 80
        authority = f"[{host}]" if ":" in host else host
        if port != default_port:
            authority += f":{port}"
        lines = [f"{method} {path} HTTP/1.1", f"Host: {authority}", "Accept-Encoding: identity"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if self.sock is None:
            raise OSError("not connected")
        self.sock.sendall(head + body)

    def getresponse(self, method: str = "POST") -> Answer:
        if self._reader is None:
            raise OSError("not connected")
        return read_answer(self._reader, method)

    def close(self) -> None:
        sock, self.sock, self._reader = self.sock, None, None
        if sock is not None:
            sock.close()
