"""Buffered reads from a socket, for HTTP read by hand on either side.

One reader for the HTTP server base (``_http``: a request's input, after the
bytes its front door already read) and the Engine client (``engine.http11``: an
answer that arrives in any number of pieces). Nothing is read ahead of what a
call asks for beyond one ``recv``; what is left stays in :meth:`left_over`, so a
kept-alive connection can be handed on whole.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_RECV = 65536


class SocketInput:
    """The bytes ``prefix`` (already read elsewhere), then whatever ``sock`` receives."""

    def __init__(self, prefix: bytes, sock: Any) -> None:
        self._buffer = bytearray(prefix)
        self._sock = sock
        self.closed = False

    def _fill(self) -> bool:
        data = self._sock.recv(_RECV)
        if not data:
            return False
        self._buffer += data
        return True

    def readline(self, limit: int = -1) -> bytes:
        """Up to and including the next LF, at most ``limit`` bytes; what is left at the end (maybe nothing)."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0 and (limit < 0 or end < limit):
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                return line
            if 0 <= limit <= len(self._buffer) or not self._fill():
                cut = len(self._buffer) if limit < 0 else min(limit, len(self._buffer))
                line = bytes(self._buffer[:cut])
                del self._buffer[:cut]
                return line

    def read(self, size: int = -1) -> bytes:
        """``size`` bytes (fewer at the end), or everything to the end with ``size`` < 0."""
        while (size < 0 or len(self._buffer) < size) and self._fill():
            pass
        cut = len(self._buffer) if size < 0 else min(size, len(self._buffer))
        data = bytes(self._buffer[:cut])
        del self._buffer[:cut]
        return data

    def peek(self, size: int = 1) -> bytes:
        if not self._buffer:
            self._fill()
        return bytes(self._buffer[:size])

    def left_over(self) -> bytes:
        return bytes(self._buffer)

    def close(self) -> None:
        self.closed = True
