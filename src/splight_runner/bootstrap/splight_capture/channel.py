"""The component's side of the channel to the supervisor, which hosts the export pipeline.

Why a Unix socket the supervisor listens on, one connection per process, and
not a pipe the child inherits: every process of the component (the top one,
forked pool workers, spawned interpreters, ``subprocess`` children that load
the bootstrap) must reach the same supervisor, and several processes writing
one pipe interleave any write larger than ``PIPE_BUF``. A connection per
process keeps each stream whole; the supervisor reads all of them.

Why a record leaves at once when nothing else is pending, and batches only in
a burst: a component usually logs rarely, and the record logged just before a
crash (a segfault, the OOM killer, ``os._exit``) is the one people read. So the
first record after a quiet moment is written by the caller's thread at once
(one ``send``), straight into the kernel's socket buffer, where the component's
death cannot reach it. That record starts a burst: until the channel has been
quiet for a moment, a ``logger.info`` only appends a tuple to a deque; the
256th record of the burst encodes the batch (:mod:`.wire`) and writes it (a few
microseconds per batch), and the timer thread writes a partial batch every
:data:`FLUSH_INTERVAL` seconds. When a pass of the timer finds nothing to
write, the burst is over and the timer sleeps until the next one starts: an
idle component has no thread waking up. Child processes (pool workers,
spawned interpreters) write every record through at once: a pool's
``terminate()`` kills its workers right after their last task returns.

A slow, stopped or dead supervisor never blocks a logging call: the socket is
non-blocking; bytes it does not take wait in a buffer of at most
``max_pending_bytes``, past which whole batches are dropped and counted (the
supervisor is told how many as soon as it reads again).

The channel never writes to a socket it did not open: a component may close
every file descriptor (daemons do) and open something else that gets the same
number. Before each write the descriptor's identity (device and inode of the
socket) is checked against the one recorded at connect time; when it differs
the channel opens a new connection without touching the old number.
"""

from __future__ import annotations

import _socket  # the C sockets: ``socket`` adds enums of every constant, milliseconds at every start
import _thread  # not ``threading``: a component that starts none does not import it for us
import os
import select
import sys
import time
from _collections import deque  # ``collections`` itself imports a dozen modules
from _operator import itemgetter
from itertools import islice

from . import wire
from .values import plain_value
from .voice import say_once

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Seconds between writes of a partial batch.
FLUSH_INTERVAL = 0.02
#: Records that make a batch the caller's thread writes itself.
BATCH = 256
#: Longest wait of a child process's logging call for a runner that is behind.
CHILD_WAIT = 0.1
#: Items queued past which a logging call that finds the channel busy (the timer thread writing)
#: waits for it instead of leaving its record queued: the queue of items is not bounded by the
#: channel's bytes until they are encoded, and a timer thread the machine does not schedule
#: must not let a component that logs flat out queue hundreds of megabytes of records.
MAX_QUEUED_ITEMS = BATCH
#: Longest such wait: a logging call never waits for the lock forever.
BUSY_WAIT = 1.0
#: Characters of text per frame at most (a record alone may be more): what one encoding copies.
FRAME_TEXT = 1 << 20
#: Frames written by one system call at most (a backlog of single-record frames from a child).
_IOV = 64


#: The channel of this process once the supervised set-up made one (the lazily loaded OTel
#: Logs API provider finds it here without the set-up importing the OTel API at start-up).
current: Channel | None = None


def _identity(fd: int) -> tuple[int, int] | None:
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class Channel:
    """Batches flat records and writes them to the supervisor's socket at ``path``."""

    def __init__(
        self,
        path: str,
        *,
        write_through: bool = False,
        max_pending_bytes: int = 16 << 20,
        report_dir: str | None = None,
    ) -> None:
        self._path = path
        self._report_dir = report_dir
        self._write_through = write_through
        #: Queued items that make the caller's thread write (the capture hook reads it per record):
        #: 1 while the channel is quiet (and always in a child), :data:`BATCH` during a burst.
        self.threshold = 1
        self._max_pending = max_pending_bytes
        self.items: deque[tuple[Any, ...]] = deque()
        self._lock = _thread.allocate_lock()
        #: Per thread: inside :meth:`write`, or waiting for a busy writer (a signal handler that logs
        #: there must not wait for the lock in turn).
        self._busy = _thread._local()
        self._sock: _socket.socket | None = None
        self._fd_identity: tuple[int, int] | None = None
        #: ``(frame, records)`` not yet sent, whole frames (header and body); and the bytes of the
        #: first already sent: a frame is never resumed on another connection (the reader would take
        #: its rest for a header). Frames, not one growing buffer: a buffer appended at one end and
        #: cut at the other is reallocated and copied, and with a slow supervisor the component
        #: grew by three times the bound in copies.
        self._frames: deque[tuple[bytes, int]] = deque()
        self._head_sent = 0
        #: Bytes in ``_frames``, what ``max_pending_bytes`` bounds.
        self.pending_bytes = 0
        self._dropped = 0
        self._dropped_first = 0
        self._dropped_last = 0
        #: Records the capture hook could not take (it adds, the writer moves them into the drops).
        self.lost = 0
        self._closed = False
        self._wake = _Wake()
        self.pid = os.getpid()
        self._connect()
        self._start_thread()

    # --- caller side ---------------------------------------------------------
    def submit(self, item: tuple[Any, ...]) -> None:
        """Queue one flat item; write now when the channel was quiet or a batch is full."""
        items = self.items
        items.append(item)
        if len(items) >= self.threshold:
            self.full()

    def full(self) -> None:
        """Items wait that the caller's thread writes itself (the capture hook calls this).

        On a quiet channel that is the first record of what may be a burst: it is
        written now, and the timer thread wakes to batch what follows. A child
        process writes each record through; when the runner is momentarily behind
        it waits a little (never more than :data:`CHILD_WAIT`) rather than keep the
        record: a pool terminates its workers right after their last task.
        """
        if self._write_through:
            if not self.write(blocking_for=CHILD_WAIT):
                self._wake.set()  # still pending: the timer keeps trying
            return
        if self.threshold < BATCH:
            self.threshold = BATCH
            self.write()
            self._wake.set()
            return
        if not self.write() and len(self.items) >= MAX_QUEUED_ITEMS:
            busy = self._busy
            if getattr(busy, "on", False):
                return  # inside this thread's own write or wait (a signal handler): stays queued
            # The timer thread holds the lock (a busy machine may not run it for a while): wait for it
            # rather than queue without bound, never longer than BUSY_WAIT. A signal handler that logs
            # meanwhile finds the thread busy and does not wait in turn: waits never nest (they did,
            # a 2 kHz handler thousands deep, until the recursion limit took records with it).
            busy.on = True
            try:
                self.write(lock_wait=BUSY_WAIT)
            finally:
                busy.on = False

    def write(self, *, blocking_for: float = 0.0, lock_wait: float = 0.0) -> bool:
        """Write everything queued; True when nothing is left pending.

        ``blocking_for`` > 0 (at exit) waits up to that long for the lock and for a
        slow reader; ``lock_wait`` > 0 only for the lock.

        Never waits for the lock on a logging call: Python runs a signal handler, a
        finalizer or a GC callback between two bytecodes of whatever the thread was
        doing, possibly this very write. A record logged there stays queued (the
        write under way, the timer or the next call takes it) instead of waiting for
        a lock its own thread holds, which would hang the component for good.
        """
        lock = self._lock
        wait = max(blocking_for, lock_wait)
        if not lock.acquire(blocking=False) and (wait <= 0 or not lock.acquire(timeout=wait)):
            return False
        busy = self._busy
        was_busy = getattr(busy, "on", False)
        busy.on = True
        try:
            if os.getpid() != self.pid or self._closed:
                return False  # a forked child before its after-fork reset, or after the last word
            self._frame_queued()
            return self._send(blocking_for)
        finally:
            busy.on = was_busy
            lock.release()

    def _frame_queued(self) -> None:
        items = self.items
        count = len(items)
        lost = self.lost
        if lost:
            self._drop(lost)  # first: should it fail (the recursion limit), the count stays where it was
            self.lost -= lost  # not reset: the hook may add one meanwhile
        if self._dropped and self._sock is not None:
            # The report stands for the records it reports: it is queued only whole, within the bound;
            # until then the count waits (and a count never sent is in the unsent file at close).
            report = wire.encode([(wire.DROPPED, self._dropped, self._dropped_first, self._dropped_last)])
            if self.pending_bytes + len(report) + wire.FRAME_HEADER <= self._max_pending:
                reported = self._dropped
                self._append_frame_bytes(report, reported)
                self._dropped -= reported
        if not count:
            return
        # Copied, then taken one chunk at a time once framed: a write that fails midway (the recursion
        # limit reached by a logging call made deep in the stack) leaves what it did not frame queued
        # for the next write, instead of losing it.
        batch = list(islice(items, count))
        popleft = items.popleft
        for chunk in _chunks(batch):
            self._frame_batch(chunk)
            for _ in range(len(chunk)):
                popleft()

    def _frame_batch(self, batch: list[tuple[Any, ...]]) -> None:
        try:
            data = wire.encode(batch)
        except (wire.NotPlain, RecursionError):
            data = _encode_each(batch)
        if len(batch) > 1 and self.pending_bytes + len(data) + wire.FRAME_HEADER > self._max_pending:
            # Over the bound as one frame: each record takes its own chance, so a huge one never
            # takes its neighbours with it.
            for item in batch:
                self._append_frame_bytes(_encode_each([item]), 1)
            return
        self._append_frame_bytes(data, len(batch))

    def _append_frame_bytes(self, data: bytes, count: int) -> None:
        if self._sock is None or self.pending_bytes + len(data) + wire.FRAME_HEADER > self._max_pending:
            self._drop(count)
            return
        frame = wire.frame_header(len(data)) + data
        self._frames.append((frame, count))
        self.pending_bytes += len(frame)

    def _drop(self, count: int) -> None:
        if count <= 0:
            return
        now = time.time_ns()
        if not self._dropped:
            self._dropped_first = now
        self._dropped += count
        self._dropped_last = now

    def _send(self, blocking_for: float) -> bool:
        frames = self._frames
        if not frames:
            return True
        sock = self._checked_socket()
        if sock is None:
            return False
        give_up_at = time.monotonic() + blocking_for
        try:
            while frames:
                # Up to _IOV frames in one call; the first from where the last call stopped in it.
                buffers: list[Any] = [memoryview(frames[0][0])[self._head_sent :]]
                buffers += [frame for frame, _ in islice(frames, 1, _IOV)]
                try:
                    sent = sock.sendmsg(buffers)
                except BlockingIOError:
                    remaining = give_up_at - time.monotonic()
                    if remaining <= 0:
                        break
                    select.select([], [sock], [], min(remaining, 0.05))
                    continue
                except InterruptedError:
                    continue
                finally:
                    buffers[0].release()
                sent += self._head_sent
                while frames and sent >= len(frames[0][0]):
                    frame, _ = frames.popleft()
                    sent -= len(frame)
                    self.pending_bytes -= len(frame)
                self._head_sent = sent
        except OSError as error:
            self._lost_connection(error)
            return False
        return not frames

    def _forget_partial_frame(self) -> None:
        """Before another connection: the rest of a frame begun on the old one is dropped, counted."""
        if self._head_sent and self._frames:
            frame, count = self._frames.popleft()
            self.pending_bytes -= len(frame)
            self._drop(count)
        self._head_sent = 0

    def _checked_socket(self) -> _socket.socket | None:
        sock = self._sock
        if sock is None:
            return None
        if _identity(sock.fileno()) != self._fd_identity:
            # The descriptor number now names something else (closed and reused, dup2'd over):
            # let go of it without closing or writing it, and connect again.
            sock.detach()
            self._sock = None
            say_once("the component closed the runner's connection; reconnecting")
            self._forget_partial_frame()
            self._connect()
            return self._sock
        return sock

    def _lost_connection(self, error: OSError) -> None:
        """The supervisor is gone or reset the stream: whatever is pending cannot be sent."""
        say_once(f"lost the connection to the runner ({error.strerror or error}); records are dropped")
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None
        self._drop(sum(count for _, count in self._frames))
        self._frames.clear()
        self._head_sent = 0
        self.pending_bytes = 0

    def _connect(self) -> None:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.connect(self._path)
        except OSError as error:
            sock.close()
            say_once(f"cannot reach the runner at {self._path} ({error.strerror or error}); records are dropped")
            return
        try:
            # The format first, whole: the connection is new, its buffer empty, the hello a few bytes.
            sock.sendall(wire.hello(f"pid {os.getpid()}, Python {sys.version.split()[0]}"))
        except OSError as error:
            sock.close()
            say_once(f"cannot reach the runner at {self._path} ({error.strerror or error}); records are dropped")
            return
        sock.setblocking(False)
        self._sock = sock
        self._fd_identity = _identity(sock.fileno())

    # --- timer thread ----------------------------------------------------------
    def _start_thread(self) -> None:
        _thread.start_new_thread(self._run, ())

    def _pending(self) -> bool:
        return bool(self.items or self._frames or self._dropped or self.lost)

    def _run(self) -> None:
        wake = self._wake
        while not self._closed:
            if self.threshold < BATCH and not self._pending():
                wake.wait()  # quiet: nothing runs until a burst starts or the channel closes
            else:
                wake.wait(FLUSH_INTERVAL)
            if self._pending():
                try:
                    self.write()
                except Exception:
                    pass
            elif not self._write_through:
                # The burst is over. An item appended while the threshold was still a batch's is
                # written here; one appended after sees the quiet threshold and is written by its caller.
                self.threshold = 1
                if self.items:
                    try:
                        self.write()
                    except Exception:
                        pass

    # --- lifecycle ---------------------------------------------------------------
    def close(self, timeout: float = 2.0) -> bool:
        """Write everything (waiting at most ``timeout`` s for the supervisor to read), then stop.

        What could not be written by then is counted in ``<report_dir>/unsent-<pid>``,
        which the runner reads after the end: its exit report stays exact even for
        records that never crossed (a frame begun and not finished included: the
        runner never reads half a frame).
        """
        done = self.write(blocking_for=timeout)
        # The last word: no write after this one (the timer's included), so the count below is final.
        lock = self._lock
        locked = lock.acquire(timeout=timeout)
        try:
            self._closed = True
            unsent = self._dropped + self.lost + sum(count for _, count in self._frames) + wire.records_in(self.items)
        finally:
            if locked:
                lock.release()
        self._wake.set()
        if unsent and self._report_dir:
            try:
                with open(wire.unsent_file(self._report_dir, os.getpid()), "w") as file:
                    file.write(str(unsent))
            except OSError:
                pass
        return done

    def after_fork_in_child(self) -> None:
        """A forked child gets its own connection; what the parent had queued is the parent's."""
        self.pid = os.getpid()
        self._lock = _thread.allocate_lock()
        self._busy = _thread._local()
        self.items.clear()
        self._frames = deque()
        self._head_sent = 0
        self.pending_bytes = 0
        self.lost = 0
        self._dropped = 0
        self._write_through = True
        self.threshold = 1
        old = self._sock
        self._sock = None
        if old is not None:
            # The parent's stream: this process never writes to it, and closing its copy sends nothing.
            try:
                os.close(old.detach())
            except OSError:
                pass
        self._closed = False
        self._wake = _Wake()
        self._connect()
        self._start_thread()


class _Wake:
    """``threading.Event``'s ``set``, and a ``wait`` that clears what it saw, for the one timer thread.

    A lock held while unset: ``set`` releases it (again: nothing to do), ``wait`` takes it.
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        self._lock.acquire()

    def set(self) -> None:
        try:
            self._lock.release()
        except RuntimeError:  # already set
            pass

    def wait(self, timeout: float = -1) -> None:
        self._lock.acquire(True, timeout)


_MESSAGE = itemgetter(4)
_EXCEPTION = itemgetter(10)


def _text_size(item: tuple[Any, ...]) -> int:
    """About what a flat item weighs encoded: a LOG item's message and traceback, else a little."""
    if item[0] != wire.LOG:
        return 64
    size = len(item[4])
    exception = item[10]
    if exception is not None:
        size += len(exception[2])
    return size


def _chunks(batch: list[tuple[Any, ...]]) -> list[list[tuple[Any, ...]]]:
    """``batch`` in runs of at most :data:`FRAME_TEXT` characters (a record alone may be more).

    Encoding a batch copies it twice on the way to a frame: 256 records of 40 KB made
    20 MB of copies at once, which a component near its memory bound could not afford.
    """
    try:  # the usual batch, short records and no traceback, in two C-level passes
        if sum(map(len, map(_MESSAGE, batch))) <= FRAME_TEXT and not any(map(_EXCEPTION, batch)):
            return [batch]
    except (IndexError, TypeError):
        pass  # a status, a drop report or an OTel Logs API record in it: weigh each item
    chunks: list[list[tuple[Any, ...]]] = []
    chunk: list[tuple[Any, ...]] = []
    size = 0
    for item in batch:
        weight = _text_size(item)
        if chunk and size + weight > FRAME_TEXT:
            chunks.append(chunk)
            chunk, size = [], 0
        chunk.append(item)
        size += weight
    if chunk:
        chunks.append(chunk)
    return chunks


def _encode_each(batch: list[tuple[Any, ...]]) -> bytes:
    """A batch with a record :func:`.wire.encode` refused: that record's fields go as plain values."""
    fixed = []
    for item in batch:
        try:
            wire.encode([item])
        except (wire.NotPlain, RecursionError):
            item = tuple(plain_value(value) for value in item)
        fixed.append(item)
    return wire.encode(fixed)
