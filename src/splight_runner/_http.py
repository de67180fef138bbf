"""The one HTTP server base the dev-engine and the gateway share (stdlib ``http.server``).

What both servers need and neither should write again: the threaded server with
a back-reference to the object that answers (:attr:`ThreadedHTTPServer.owner`),
the keep-alive handler that tracks its connection and sends an :class:`Answer`
in one write, the open connections cut at stop (:class:`OpenConnections`), the
URL of a host that may be an IPv6 literal (:func:`http_url`), and the foreground
loop of a command that serves until SIGINT or SIGTERM (:func:`wait_for_stop_signal`).

A server given :class:`ConnectionLimits` (the gateway; the dev-engine has none)
also holds at most ``max_connections`` connections: at the cap, or when accept()
finds no file descriptor left, it closes the connection that has waited longest
for a request (an idle keep-alive or a client that never sent anything) to make
room, and when none is idle it leaves newcomers in the listen backlog for a moment
instead of spinning on a listening socket it cannot accept from. A connection
idle longer than ``idle_timeout``, or still sending one request after
``read_timeout``, is closed.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any

from splight_runner._socket_input import SocketInput


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


@dataclass(frozen=True)
class ConnectionLimits:
    """How many connections a server holds and how long it lets them wait or dawdle."""

    #: Open connections at most (see :func:`connection_cap` for the file-descriptor bound).
    max_connections: int
    #: A connection with no request started is closed after this many seconds.
    idle_timeout: float
    #: A request's line, headers and body must all arrive within this many seconds.
    read_timeout: float


def connection_cap(wanted: int, reserve: int) -> int:
    """``wanted``, lowered so that ``reserve`` file descriptors stay free under ``RLIMIT_NOFILE``."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return wanted
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return wanted
    return max(1, min(wanted, soft - reserve))


#: Phases of a connection (:meth:`OpenConnections.mark`).
WAITING, READING, WORKING = "waiting", "reading", "working"

#: accept() errors that mean "no resources for another connection right now".
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class OpenConnections:
    """The connections a server has open, numbered as they arrive, so a stop can cut them all.

    Each also has a phase (:data:`WAITING` for a request, :data:`READING` one,
    :data:`WORKING` on it) and the time it entered it, for :class:`ConnectionLimits`.
    """

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._open: dict[socket.socket, tuple[str, float]] = {}
        #: Connections accepted so far.
        self.count = 0

    def opened(self, sock: socket.socket) -> int:
        """Track ``sock`` (waiting for a request); returns its number (1 for the first connection)."""
        with self._lock:
            if sock not in self._open:
                self.count += 1
            self._open[sock] = (WAITING, time.monotonic())
            return self.count

    def closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.pop(sock, None)
            self._lock.notify_all()

    def mark(self, sock: socket.socket, phase: str) -> None:
        with self._lock:
            if sock in self._open:
                self._open[sock] = (phase, time.monotonic())

    def __len__(self) -> int:
        with self._lock:
            return len(self._open)

    def wait_for_close(self, timeout: float) -> None:
        """Until a connection closes, at most ``timeout`` seconds."""
        with self._lock:
            self._lock.wait(timeout)

    def evict_idle(self) -> bool:
        """Shut down the connection that has waited longest for a request; False when none waits."""
        with self._lock:
            waiting = [(since, sock) for sock, (phase, since) in self._open.items() if phase == WAITING]
            if not waiting:
                return False
            _, sock = min(waiting, key=lambda item: item[0])
            self._open[sock] = (READING, time.monotonic())  # not chosen twice while it closes
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        return True

    def expire(self, limits: ConnectionLimits) -> None:
        """Shut down connections idle past ``idle_timeout`` or reading one request past ``read_timeout``."""
        now = time.monotonic()
        with self._lock:
            late = [
                sock
                for sock, (phase, since) in self._open.items()
                if (phase == WAITING and now - since > limits.idle_timeout)
                or (phase == READING and now - since > limits.read_timeout)
            ]
        for sock in late:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

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
    With ``limits``, the server tracks its connections in ``connections`` itself
    and keeps to the limits (see the module's documentation).
    """

    daemon_threads = True
    allow_reuse_address = True
    #: Seconds between two sweeps for idle and slow connections.
    sweep_interval = 0.5
    #: Threads that answer requests whose head is whole, with ``limits`` (see :class:`FrontDoor`).
    workers = 32

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        owner: Any = None,
        *,
        limits: ConnectionLimits | None = None,
        connections: OpenConnections | None = None,
    ) -> None:
        self.owner = owner
        self.limits = limits
        self.connections = connections if connections is not None else OpenConnections()
        self.front_door: FrontDoor | None = None
        self._next_sweep = 0.0
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        limits = self.limits
        if limits is None:
            return super().get_request()
        connections = self.connections
        if len(connections) >= limits.max_connections:
            # Make room by closing the longest-idle connection; with none idle, leave the
            # newcomer in the backlog a moment (this raise makes serve_forever poll again).
            if not connections.evict_idle():
                connections.wait_for_close(0.2)
                raise OSError(errno.EAGAIN, "connection limit reached")
            connections.wait_for_close(0.2)
        try:
            sock, address = super().get_request()
        except OSError as error:
            if error.errno in _OUT_OF_RESOURCES:
                # No descriptor for it: the listening socket stays readable, so without a
                # pause this would spin. Free one if a connection is idle, then try again.
                connections.evict_idle()
                connections.wait_for_close(0.1)
            raise
        connections.opened(sock)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        if self.limits is not None:
            self.connections.closed(request)
        super().shutdown_request(request)

    def service_actions(self) -> None:
        limits = self.limits
        if limits is not None and time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + self.sweep_interval
            self.connections.expire(limits)

    def serve_in_background(self, name: str, poll_interval: float) -> threading.Thread | None:
        """Serve on started daemon threads (the dev-engine and the gateway both run this way).

        With ``limits`` the :class:`FrontDoor` serves (one selector thread, ``workers`` threads);
        without, ``serve_forever`` with a thread per connection.
        """
        if self.limits is not None:
            self.front_door = FrontDoor(self, self.limits, self.workers)
            self.front_door.start()
            return None
        thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": poll_interval}, name=name, daemon=True
        )
        thread.start()
        return thread

    def stop_background(self, thread: threading.Thread | None) -> None:
        """Undo :meth:`serve_in_background`: stop the loop, close the listening socket, wait for the thread."""
        if self.front_door is not None:
            self.front_door.stop()
            self.server_close()
            return
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

    def __init__(self, request: Any, client_address: Any, server: Any, front: _Waiting | None = None) -> None:
        #: Set when the :class:`FrontDoor` hands over one request whose head it already read.
        self._front = front
        #: After a front-door request: the connection may carry another one (it goes back to the door).
        self.keep_alive = False
        super().__init__(request, client_address, server)

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
        if self._front is not None:
            self.rfile = SocketInput(bytes(self._front.buffer), self.connection)  # type: ignore[assignment]
            self.connection.settimeout(self.server.limits.read_timeout)

    def handle(self) -> None:
        if self._front is None:
            super().handle()
            return
        # One request; the front door waits for the next one without a thread.
        self.close_connection = True
        BaseHTTPRequestHandler.handle_one_request(self)
        self.keep_alive = not self.close_connection

    def left_over(self) -> bytes:
        """Bytes of the next request that arrived with this one (a pipelining client)."""
        return self.rfile.left_over() if isinstance(self.rfile, SocketInput) else b""

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.connection_closed()

    def handle_one_request(self) -> None:
        server = self.server
        if getattr(server, "limits", None) is None:
            super().handle_one_request()
            return
        connections: OpenConnections = server.connections  # type: ignore[attr-defined]
        connections.mark(self.request, WAITING)
        try:
            started = self.rfile.peek(1)  # the next request's first byte, or the end
        except OSError:  # timed out, or evicted / expired by the server
            started = b""
        if not started:
            self.close_connection = True
            return
        connections.mark(self.request, READING)
        super().handle_one_request()

    def request_read(self) -> None:
        """Say the request is fully read (its read deadline no longer applies)."""
        if getattr(self.server, "limits", None) is not None:
            self.server.connections.mark(self.request, WORKING)  # type: ignore[attr-defined]

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


# -- the front door: many slow connections, few threads ----------------------------------------

#: Largest request head (request line and headers) the front door waits for.
MAX_HEAD = 64 * 1024
_END_OF_HEAD = b"\r\n\r\n"


class _Waiting:
    """A connection whose next request head has not fully arrived (or that is idle between requests)."""

    __slots__ = ("address", "buffer", "since", "sock")

    def __init__(self, sock: socket.socket, address: Any, buffer: bytes = b"") -> None:
        self.sock = sock
        self.address = address
        self.buffer = bytearray(buffer)
        self.since = time.monotonic()


class FrontDoor:
    """One thread and one selector hold every connection until its request head has fully arrived.

    Why: a thread per connection lets a crowd of clients that trickle their
    headers (a byte every few seconds) hold every thread, while the collector's
    real requests wait or are cut. Here a waiting connection costs a descriptor
    and a small buffer; only a request whose head is whole reaches one of
    ``workers`` threads, which answers that one request and hands a keep-alive
    connection back. At the connection cap the connection that has waited
    longest is closed for the newcomer (a trickling client before a collector,
    whose requests arrive whole); a head still incomplete after
    ``read_timeout``, or an idle keep-alive after ``idle_timeout``, is closed.
    Nothing runs while nothing arrives: the selector waits for the next event or
    the next expiry.
    """

    def __init__(self, server: ThreadedHTTPServer, limits: ConnectionLimits, workers: int) -> None:
        import queue
        import selectors

        self._server = server
        self._limits = limits
        self._selector = selectors.DefaultSelector()
        self._waiting: dict[socket.socket, _Waiting] = {}
        self._ready: queue.Queue[_Waiting | None] = queue.Queue()
        self._returned: queue.SimpleQueue[_Waiting] = queue.SimpleQueue()
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)
        self._working = 0
        self._lock = threading.Lock()
        self._stopping = False
        self._threads = [threading.Thread(target=self._serve, name="front-door", daemon=True)]
        self._threads += [
            threading.Thread(target=self._work, name=f"front-door-worker-{n}", daemon=True) for n in range(workers)
        ]

    def start(self) -> None:
        listener = self._server.socket
        listener.setblocking(False)
        self._selector.register(listener, 1, None)  # selectors.EVENT_READ
        self._selector.register(self._wake_read, 1, "wake")
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake()
        for _ in self._threads[1:]:
            self._ready.put(None)
        for thread in self._threads:
            thread.join(5)
        for waiting in list(self._waiting.values()):
            self._drop(waiting)
        self._selector.close()
        self._wake_read.close()
        self._wake_write.close()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_write.send(b"\0")

    # -- the selector thread ---------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stopping:
            timeout = self._next_expiry()
            try:
                events = self._selector.select(timeout)
            except OSError:
                return
            for key, _ in events:
                if key.data is None:
                    self._accept()
                elif key.data == "wake":
                    with contextlib.suppress(OSError):
                        self._wake_read.recv(4096)
                else:
                    self._read(key.data)
            while not self._returned.empty():
                self._watch(self._returned.get_nowait())
            self._expire()

    def _next_expiry(self) -> float | None:
        if not self._waiting:
            return None
        return max(0.05, min(self._limits.read_timeout, self._limits.idle_timeout) / 4)

    def _open(self) -> int:
        return len(self._waiting) + self._working

    def _accept(self) -> None:
        while True:
            if self._open() >= self._limits.max_connections and not self._evict_oldest():
                return  # every connection is at work: newcomers wait in the backlog
            try:
                sock, address = self._server.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                if error.errno in _OUT_OF_RESOURCES and self._evict_oldest():
                    continue
                return
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._server.connections.opened(sock)
            self._watch(_Waiting(sock, address))

    def _watch(self, waiting: _Waiting) -> None:
        try:
            waiting.sock.setblocking(False)
            self._selector.register(waiting.sock, 1, waiting)
        except (OSError, ValueError, KeyError):
            self._close(waiting.sock)
            return
        self._waiting[waiting.sock] = waiting
        if _END_OF_HEAD in waiting.buffer:  # a pipelined request already here
            self._dispatch(waiting)

    def _evict_oldest(self) -> bool:
        if not self._waiting:
            return False
        self._drop(min(self._waiting.values(), key=lambda waiting: waiting.since))
        return True

    def _read(self, waiting: _Waiting) -> None:
        try:
            data = waiting.sock.recv(MAX_HEAD)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(waiting)
            return
        if not waiting.buffer:
            waiting.since = time.monotonic()  # a request begins: the read timeout runs from here
        waiting.buffer += data
        if _END_OF_HEAD in waiting.buffer:
            self._dispatch(waiting)
        elif len(waiting.buffer) > MAX_HEAD:
            with contextlib.suppress(OSError):
                waiting.sock.send(b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n")
            self._drop(waiting)

    def _dispatch(self, waiting: _Waiting) -> None:
        self._selector.unregister(waiting.sock)
        del self._waiting[waiting.sock]
        with self._lock:
            self._working += 1
        self._server.connections.mark(waiting.sock, WORKING)
        self._ready.put(waiting)

    def _expire(self) -> None:
        now = time.monotonic()
        limits = self._limits
        late = [
            waiting
            for waiting in self._waiting.values()
            if now - waiting.since > (limits.read_timeout if waiting.buffer else limits.idle_timeout)
        ]
        for waiting in late:
            self._drop(waiting)

    def _drop(self, waiting: _Waiting) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(waiting.sock)
        self._waiting.pop(waiting.sock, None)
        self._close(waiting.sock)

    def _close(self, sock: socket.socket) -> None:
        self._server.connections.closed(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()

    # -- the workers -------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            waiting = self._ready.get()
            if waiting is None:
                return
            keep = False
            try:
                waiting.sock.setblocking(True)
                waiting.sock.settimeout(self._limits.read_timeout)
                handler = self._server.RequestHandlerClass(waiting.sock, waiting.address, self._server, waiting)
                keep = bool(getattr(handler, "keep_alive", False)) and not self._stopping
            except Exception:
                self._server.handle_error(waiting.sock, waiting.address)
            finally:
                with self._lock:
                    self._working -= 1
            if keep:
                self._server.connections.mark(waiting.sock, WAITING)
                self._returned.put(_Waiting(waiting.sock, waiting.address, handler.left_over()))
                self._wake()
            else:
                self._close(waiting.sock)
