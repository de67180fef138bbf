"""The supervisor hosts the pipeline; the component only captures.

Why here and not in the component: the supervisor is the component's parent,
with its own GIL and a longer life. Exporting on the component's GIL costs
every ``logger.info``; exporting inside the component's lifetime loses what it
logged just before a SIGKILL, a segfault or an OOM kill, and cannot send a
final status for a death it does not survive. Here, records sit in the
kernel's socket buffer or in this process as soon as the component's channel
wrote them (see the bootstrap's ``splight_capture.channel``), and the final status
is simply the pipeline's last record, to every exporter.

The way through this module, in order:

1. a listening Unix socket in the runner's private state folder, made before
   the child starts; every process of the component connects once;
2. the *reader* thread accepts, checks each connection's hello (the channel's
   format, ``splight_capture.wire``: a component side of another format is
   named in one line and not read), reads length-prefixed frames, and
   puts them in the *intake* as read, bounded in bytes: it never waits on the
   pipeline, so a slow Engine never makes the component's writes back up;
   past the bound whole frames are dropped and counted;
3. the *feeder* thread decodes one frame at a time and hands its items to the
   pipeline: Engine records straight away when the Engine is the only
   destination (:class:`~splight_runner.pipeline.flat.EngineEmitter`), else
   SDK log records (:class:`~splight_runner.pipeline.flat.FlatEmitter`) on the
   SDK ``LoggerProvider`` built from the component's resource and every
   exporter ``OTEL_LOGS_EXPORTER`` names. It waits while the Engine queue is
   full instead of letting it drop, so a burst is held (in bytes) rather
   than lost;
4. at the end (:meth:`PipelineHost.finish`), after the child has exited and
   its connections reached end-of-file, the final status goes in last, then
   one flush bounded by one deadline, then one line per destination for what
   could not be delivered.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import struct
import threading
import time
from collections import deque

from splight_runner import _sockets
from splight_runner.bootstrap.splight_capture import wire
from splight_runner.diagnostics import say, say_limited
from splight_runner.pipeline.deadline import ExitDeadline

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Largest frame accepted from a component process (a batch of 256 records of 1 MiB each is smaller).
MAX_FRAME = 512 << 20
#: Bytes of frames the intake holds while the feeder waits for room in the Engine queue (a healthy
#: but slower Engine); a frame past it is dropped and counted. Held as the frames were read and
#: decoded one at a time by the feeder, so this is what the intake costs in memory: 32 MiB is about
#: 500,000 short records (66 B each on the wire). Before, decoded items were held against a bound
#: of 64 MiB of frame bytes, several times that in memory (161 MiB peak for the runner, Engine down).
DEFAULT_MAX_INTAKE_BYTES = 32 << 20
#: How long after the child's exit the host waits for its other processes' connections to close.
_EOF_GRACE = 0.3
#: At the deadline, at most this long to read and count what the sockets still hold (the exit
#: report waits for it: it must be exact).
_COUNT_TIME = 0.15


class _Connection:
    __slots__ = ("buffer", "greeted", "sock")

    def __init__(self, sock: _sockets.Socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        #: The hello was read and its format is this runner's: what follows are frames.
        self.greeted = False


class PipelineHost:
    """Reader, intake and feeder of the supervisor-hosted pipeline."""

    def __init__(self, folder: str, *, max_intake_bytes: int = DEFAULT_MAX_INTAKE_BYTES) -> None:
        self.folder = folder
        self.path = os.path.join(folder, "channel")
        self._listener = _sockets.unix_listener(self.path, 64)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        #: Written by :meth:`finish` so that the reader, blocked until something arrives, sees the stop.
        self._wake_read, self._wake_write = _sockets.socketpair()
        self._wake_read.setblocking(False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, "wake")
        self._connections: dict[int, _Connection] = {}
        self.connections_seen = 0
        self._max_intake = max_intake_bytes
        #: Frames as they were read (the feeder decodes them): the byte bound is what the intake holds.
        self._intake: deque[bytes] = deque()
        self._intake_bytes = 0
        self._intake_lock = threading.Lock()
        self._intake_ready = threading.Condition(self._intake_lock)
        self._reading = True
        #: Past the deadline: frames still read are counted as undelivered, never fed.
        self._counting_only = False
        self._input_ended = threading.Event()
        self.dropped = 0
        self._dropped_first = 0
        self._dropped_last = 0
        self.pipeline: Any = None
        self._pipeline_ready = threading.Event()
        self._feeding_done = threading.Event()
        #: Held by the feeder while it hands one item over, and by finish() to stop it.
        self._feed_lock = threading.Lock()
        self._fed_to_the_end = False
        #: The batch the feeder took from the intake, and the index of its first item not handed over.
        self._in_hand: list[Any] = []
        self._in_hand_next = 0
        self._exit_deadline: ExitDeadline | None = None
        #: Called with the pid of every process that connects (the OOM watch looks at its cgroup).
        self.on_peer: Any = None
        self._reader = threading.Thread(target=self._read_loop, name="splight-runner-reader", daemon=True)

    def start(self) -> None:
        """Start reading (after the child started: the supervisor forks with no other thread running)."""
        self._reader.start()

    # --- building the pipeline (off the component's start-up path) -------------
    def start_pipeline(self, build: Any) -> None:
        """Build the pipeline with ``build()`` in a thread, then start feeding it."""

        def run() -> None:
            try:
                self.pipeline = build()
            except Exception as error:
                say(f"could not set up the export pipeline, records are not shipped ({type(error).__name__}: {error})")
                self.pipeline = None
            self._pipeline_ready.set()
            self._feed_loop()

        threading.Thread(target=run, name="splight-runner-pipeline", daemon=True).start()

    # --- reader ------------------------------------------------------------------
    def _read_loop(self) -> None:
        """Accept and read every connection until :meth:`finish` stops the reading, then drain.

        The stop is read *before* each wait, never after it: a component that
        connects, writes and exits while this thread has not even been scheduled
        (a short component on a busy machine) left its connection in the
        listener's backlog and its bytes in the socket, and the passes after the
        stop take them (select with no wait) until nothing is ready. A connection
        still open but silent (a process the component left behind) is not waited
        for, and the drain ends at the exit deadline even if one keeps writing.
        """
        selector = self._selector
        draining = False
        while True:
            draining = draining or not self._reading
            try:
                events = selector.select(0 if draining else None)
            except OSError:
                break
            events = [(key, mask) for key, mask in events if key.data != "wake"]
            for key, _ in events:
                if key.data is None:
                    self._accept()
                else:
                    self._read(key.data)
            if draining and (not events or self._deadline_passed()):
                break
        if self._deadline_passed():
            self._count_what_is_left()
        for connection in list(self._connections.values()):
            self._close(connection)
        with contextlib.suppress(OSError):
            self._listener.close()
        self._input_ended.set()
        with self._intake_ready:
            self._intake_ready.notify_all()

    def _accept(self) -> None:
        while True:
            try:
                sock = _sockets.accept(self._listener)
            except OSError:  # BlockingIOError: none left
                return
            if self.on_peer is not None:
                with contextlib.suppress(OSError, struct.error):
                    pid, _, _ = struct.unpack("3i", sock.getsockopt(_sockets.SOL_SOCKET, _sockets.SO_PEERCRED, 12))
                    self.on_peer(pid)
            connection = _Connection(sock)
            self._connections[sock.fileno()] = connection
            self.connections_seen += 1
            self._selector.register(sock, selectors.EVENT_READ, connection)

    def _count_what_is_left(self) -> None:
        """At the deadline: what the component wrote and nobody will feed is read and counted, not left.

        The bytes in the sockets were written, so no one else counts them; the
        exit report must. Bounded by what the sockets hold and by
        :data:`_COUNT_TIME` (a process left behind may keep writing).
        """
        self._counting_only = True
        give_up_at = time.monotonic() + _COUNT_TIME
        for connection in list(self._connections.values()):
            while connection.sock.fileno() in self._connections and time.monotonic() < give_up_at:
                if not self._read(connection):
                    break

    def _read(self, connection: _Connection) -> bool:
        """Read what one connection has ready; False when it had nothing (or ended)."""
        try:
            data = connection.sock.recv(1 << 20)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            data = b""
        if not data:
            self._close(connection)
            return False
        buffer = connection.buffer
        buffer += data
        offset = 0
        if not connection.greeted:
            offset = self._greet(connection)
            if offset <= 0:
                return offset == 0
        while len(buffer) - offset >= wire.FRAME_HEADER:
            size = wire.frame_size(buffer[offset : offset + wire.FRAME_HEADER])
            if size > MAX_FRAME:
                say("a component process sent a malformed record stream; its connection is closed")
                self._close(connection)
                return False
            end = offset + wire.FRAME_HEADER + size
            if len(buffer) < end:
                break
            self._take_frame(bytes(buffer[offset + wire.FRAME_HEADER : end]))
            offset = end
        if offset:
            del buffer[:offset]
        return True

    def _greet(self, connection: _Connection) -> int:
        """The length of the connection's hello once it is whole; 0 while it is not; -1: not our format.

        A component side of another format (another splight-runner's bootstrap on the
        component's ``PYTHONPATH``) is said in one line and its connection closed: its
        bytes are never read as records.
        """
        buffer = connection.buffer
        if len(buffer) < wire.HELLO_FIXED:
            return 0
        try:
            size = wire.hello_size(bytes(buffer[: wire.HELLO_FIXED]))
        except wire.HelloError as error:
            say_limited("channel-format", f"a component process connected but its records are not read: {error}")
            self._close(connection)
            return -1
        if len(buffer) < size:
            return 0
        connection.greeted = True
        return size

    def _take_frame(self, frame: bytes) -> None:
        size = len(frame)
        with self._intake_ready:
            if self._fed_to_the_end or self._counting_only or self._intake_bytes + size > self._max_intake:
                self._count_drop(wire.records_in(_decoded(frame)))
                return
            self._intake.append(frame)
            self._intake_bytes += size
            self._intake_ready.notify()

    def _count_drop(self, count: int) -> None:
        """Count ``count`` records lost before the pipeline (the caller holds ``_intake_lock``)."""
        now = time.time_ns()
        if not self.dropped:
            self._dropped_first = now
        self.dropped += count
        self._dropped_last = now

    def _close(self, connection: _Connection) -> None:
        with contextlib.suppress(Exception):
            self._selector.unregister(connection.sock)
        self._connections.pop(connection.sock.fileno(), None)
        with contextlib.suppress(OSError):
            connection.sock.close()

    # --- feeder ------------------------------------------------------------------
    def _feed_loop(self) -> None:
        """Move frames from the intake into the pipeline, one item at a time under ``_feed_lock``.

        Why a lock per item: at the exit deadline :meth:`finish` stops the feeder
        wherever it is and counts what it still held. Without that, a feeder still
        at work (a busy machine) went on moving records while the exit report was
        read — records dropped here counted once as ``dropped`` and again in the
        pipeline's own drop count (10,000 records reported as 15,392), or a batch
        in the feeder's hands counted nowhere.
        """
        pipeline = self.pipeline
        try:
            while True:
                with self._intake_ready:
                    while not self._intake and not self._input_ended.is_set() and not self._fed_to_the_end:
                        # Every change of these three notifies: nothing runs here while nothing arrives.
                        self._intake_ready.wait()
                    if self._fed_to_the_end or not self._intake:
                        break
                    frame = self._intake.popleft()
                    self._intake_bytes -= len(frame)
                    # Decoded here, one frame at a time: a frame's items take several times its bytes.
                    items = _decoded(frame)
                    self._in_hand, self._in_hand_next = items, 0
                if pipeline is None:
                    with self._feed_lock, self._intake_lock:
                        if self._fed_to_the_end:
                            return  # finish() counted this batch
                        self._count_drop(wire.records_in(items))  # in the exit line launch says without a pipeline
                        self._in_hand = []
                    continue
                for index, item in enumerate(items):
                    room = pipeline.wait_for_room(self._deadline)
                    with self._feed_lock:
                        if self._fed_to_the_end:
                            return  # finish() counted this item and the rest
                        self._in_hand_next = index + 1
                        if not room:
                            with self._intake_lock:
                                self._count_drop(wire.records_in((item,)))
                            continue
                        try:
                            pipeline.emit(item)
                        except Exception as error:  # one bad record never stops the feeder
                            say(f"a record could not be converted ({type(error).__name__}: {error})")
                with self._feed_lock:
                    if self._fed_to_the_end:
                        return
                    self._in_hand = []
                    if self.dropped and pipeline.has_room():
                        with self._intake_lock:
                            count, first, last = self.dropped, self._dropped_first, self._dropped_last
                            self.dropped = 0
                        pipeline.report_drops(count, first, last)
        finally:
            self._feeding_done.set()

    def _deadline(self) -> float | None:
        deadline = self._exit_deadline
        return None if deadline is None else deadline.at

    def _deadline_passed(self) -> bool:
        deadline = self._exit_deadline
        return deadline is not None and deadline.passed()

    # --- the end -----------------------------------------------------------------
    def finish(self, deadline: ExitDeadline) -> Any:
        """End of input: wait for the component's connections to close, and everything to be fed.

        Returns the pipeline (``None`` when it could not be built) for the final status
        and the last flush; never waits past ``deadline`` (which may move closer meanwhile).
        """
        self._exit_deadline = deadline
        eof_by = time.monotonic() + _EOF_GRACE
        while self._connections and time.monotonic() < min(eof_by, deadline.at):
            time.sleep(0.01)
        self._reading = False
        with contextlib.suppress(OSError):
            self._wake_write.send(b"\0")
        deadline.join(self._reader)
        self._reader.join(_COUNT_TIME + 0.05)  # past the deadline, only the bounded count of what is left
        deadline.wait(self._pipeline_ready.wait)
        deadline.wait(self._feeding_done.wait)
        # From here on nothing moves: what the feeder did not hand over is counted here, once,
        # and ``dropped`` is final for the exit report.
        with self._feed_lock, self._intake_ready:
            self._fed_to_the_end = True
            left = self._unsent_by_the_component()
            left += sum(wire.records_in(_decoded(frame)) for frame in self._intake)
            left += wire.records_in(self._in_hand[self._in_hand_next :])
            self._intake.clear()
            self._intake_bytes = 0
            self._in_hand = []
            if left:
                self._count_drop(left)
            self._intake_ready.notify_all()
        return self.pipeline if self._pipeline_ready.is_set() else None

    def _unsent_by_the_component(self) -> int:
        """Records the component's processes could not write before they ended (their own count)."""
        total = 0
        for name in os.listdir(self.folder):
            if name.startswith(wire.UNSENT_PREFIX):
                with contextlib.suppress(OSError, ValueError), open(os.path.join(self.folder, name)) as file:
                    total += int(file.read().strip() or 0)
        return total

    def close(self) -> None:
        self._reading = False
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def _decoded(frame: bytes) -> list[Any]:
    """The items of one frame; none (said once) when it cannot be read."""
    try:
        return wire.decode(frame)
    except ValueError as error:
        say_limited(
            "unreadable-frame", f"a component process sent a frame that cannot be read; it is skipped ({error})"
        )
        return []
