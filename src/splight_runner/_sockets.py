"""The runner's sockets, made with the C module ``_socket``.

``socket`` turns every constant of the C module into enums when it is imported
(and imports ``enum``): a sixth of a ``run-component`` start-up, spent on one
Unix listener, one socket pair and the Engine's TCP connections, none of which
reads an enum. ``_socket.socket`` is the class ``socket.socket`` derives from;
its methods are the ones the runner calls. What ``socket`` adds and the runner
needs is here: accepting a connection, connecting to the first address that
answers, and a ``socket.socket`` for TLS (an https Engine imports ``ssl``, which
imports ``socket`` anyway).
"""

from __future__ import annotations

import _socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

Socket = _socket.socket
#: Name resolution failures (``socket.gaierror`` is this class).
gaierror = _socket.gaierror
SHUT_RDWR = _socket.SHUT_RDWR
SOL_SOCKET = _socket.SOL_SOCKET
SO_PEERCRED = _socket.SO_PEERCRED


def unix_listener(path: str, backlog: int) -> Socket:
    """A non-blocking stream socket listening at ``path``."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def accept(listener: Socket) -> Socket:
    """The next connection to ``listener``, non-blocking (``BlockingIOError`` when there is none)."""
    fd, _ = listener._accept()
    sock = _socket.socket(listener.family, _socket.SOCK_STREAM, listener.proto, fd)
    sock.setblocking(False)
    return sock


def socketpair() -> tuple[Socket, Socket]:
    """Two connected Unix stream sockets (a thread's way to wake another blocked in a selector)."""
    return _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)


def connect(host: str | bytes, port: int, timeout: float) -> Socket:
    """A TCP connection to the first of ``host``'s addresses that accepts one (``socket.create_connection``).

    Each address gets ``timeout``; when none connects, the first address's error is raised
    (the one that names the usual cause).
    """
    errors: list[OSError] = []
    for family, kind, proto, _, address in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)  # a request is one write
        except OSError as error:
            sock.close()
            errors.append(error)
            continue
        return sock
    if errors:
        raise errors[0]
    raise OSError(f"no address found for {host!r}")


def for_tls(sock: Socket) -> Any:
    """``sock`` as the ``socket.socket`` that ``ssl`` wraps (the same descriptor, ``sock`` let go of it)."""
    import socket

    timeout = sock.gettimeout()
    wrapped = socket.socket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    wrapped.settimeout(timeout)
    return wrapped
