"""The bootstrap's channel: what the component's process writes to the supervisor, tested against a real socket."""

from __future__ import annotations

import os
import socket
import threading
import time

from splight_runner.bootstrap.splight_capture import wire
from splight_runner.bootstrap.splight_capture.channel import MAX_QUEUED_ITEMS, Channel


def _frames(data: bytes) -> list[list[tuple]]:
    """Every whole frame of a connection's stream, after its hello; fails if the stream is not whole frames."""
    offset = wire.hello_size(data[: wire.HELLO_FIXED])
    frames = []
    while len(data) - offset >= wire.FRAME_HEADER:
        size = wire.frame_size(data[offset : offset + wire.FRAME_HEADER])
        if len(data) - offset - wire.FRAME_HEADER < size:
            break
        frames.append(wire.decode(data[offset + wire.FRAME_HEADER : offset + wire.FRAME_HEADER + size]))
        offset += wire.FRAME_HEADER + size
    return frames


def _read_all(conn: socket.socket, quiet: float = 0.3) -> bytes:
    conn.settimeout(quiet)
    chunks = []
    while True:
        try:
            chunk = conn.recv(1 << 20)
        except TimeoutError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _listening(tmp_path) -> tuple[str, socket.socket]:
    """A Unix socket listening where a channel connects, as the runner's host does."""
    path = str(tmp_path / "channel")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(4)
    return path, server


def _item(text: str) -> tuple:
    return (wire.LOG, "app", 20, "INFO", text, "/x/main.py", 1, "f", time.time(), None, None, None, 0, 0, 0)


def test_a_frame_begun_on_a_reused_descriptor_is_not_resumed_on_the_new_connection(tmp_path):
    path, server = _listening(tmp_path)
    channel = Channel(path)
    _first, _ = server.accept()  # kept open, never read
    try:
        # A frame far bigger than the socket buffer: only its beginning can leave while nobody reads.
        channel.submit(_item("x" * (4 << 20)))
        channel.write()
        assert channel._head_sent > 0  # part of the frame went out on the first connection
        # The component reuses the descriptor number for something else (as after closerange).
        other = socket.socket()
        os.dup2(other.fileno(), channel._sock.fileno())
        channel.submit(_item("after"))
        channel.write()
        second, _ = server.accept()
        channel.close(timeout=2)
        received = _frames(_read_all(second))
        items = [item for frame in received for item in frame]
        # The new stream starts at a frame boundary: the next record arrives, the cut one is reported dropped.
        assert [item[4] for item in items if item[0] == wire.LOG] == ["after"]
        assert [item[1] for item in items if item[0] == wire.DROPPED] == [1]
    finally:
        server.close()


def test_a_runner_that_reads_nothing_never_blocks_the_caller(tmp_path):
    path, server = _listening(tmp_path)
    channel = Channel(path, max_pending_bytes=1 << 20)
    try:
        started = time.monotonic()
        for i in range(20_000):
            channel.submit(_item(f"record {i} " + "y" * 200))
        assert time.monotonic() - started < 5
        assert channel.pending_bytes <= 1 << 20  # bounded in bytes; the rest is counted as dropped
        assert channel._dropped > 0
    finally:
        channel.close(timeout=0)
        server.close()


def test_a_burst_of_long_records_is_framed_about_a_megabyte_at_a_time(tmp_path):
    """Encoding copies a batch twice: 256 records of 40 KB must not become one 10 MB frame."""
    path, server = _listening(tmp_path)
    channel = Channel(path)
    conn, _ = server.accept()
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(_read_all(conn, quiet=1.0)))
    reader.start()
    try:
        for i in range(256):
            channel.items.append(_item(f"{i} " + "x" * 40_000))
        channel.items.append((wire.STATUS, "Running", time.time_ns()))
        channel.write()
        channel.close(timeout=5)
        reader.join(10)
        frames = _frames(received[0])
    finally:
        server.close()
    texts = [sum(len(item[4]) for item in frame if item[0] == wire.LOG) for frame in frames]
    assert sum(len(frame) for frame in frames) == 257  # every item, in order
    assert [item[4].split()[0] for frame in frames for item in frame if item[0] == wire.LOG] == [
        str(i) for i in range(256)
    ]
    assert len(frames) >= 10 and max(texts) <= 1 << 20, texts


def test_a_logging_call_waits_for_a_busy_writer_rather_than_queue_without_bound(tmp_path):
    """A timer thread the machine does not schedule holds the lock: callers queue a batch, then wait."""
    path, server = _listening(tmp_path)
    channel = Channel(path)
    conn, _ = server.accept()
    conn.setblocking(False)
    channel.submit(_item("first"))  # the burst starts: from now on the caller writes every batch
    most_queued = 0
    try:
        channel._lock.acquire()  # as the timer thread does while it writes
        releaser = threading.Timer(0.3, channel._lock.release)
        releaser.start()
        started = time.monotonic()
        for i in range(2_000):
            channel.submit(_item(f"record {i}"))
            most_queued = max(most_queued, len(channel.items))
        waited = time.monotonic() - started
        releaser.join()
    finally:
        channel.close(timeout=0)
        server.close()
    assert most_queued <= MAX_QUEUED_ITEMS
    assert 0.2 < waited < 5  # it waited for the writer, once, and went on
