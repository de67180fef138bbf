"""What the component last wrote to its stderr, kept where the runner can read it after any death.

The runner tells a user how their component ended (an exit code, a signal, the
OOM killer) and adds what the component last wrote to stderr: the ``SystemExit``
text, a traceback a library printed, Python's fatal-error stack after a native
crash. It cannot read the component's stderr itself without owning it, which
would cost the component its terminal (``isatty``, colours) and make a slow
runner block its writes. So the component keeps the tail itself, in two files
of the runner's private folder:

* ``stderr-<pid>``: a ring of the last :data:`SIZE` bytes written through
  ``sys.stderr``, in a shared memory map of that file: what was written is in
  the page cache the moment it is written, so it outlives a SIGKILL, a segfault
  or an OOM kill. ``sys.stderr`` becomes a thin proxy (:mod:`.streams`) that
  writes through to the original object first and then copies.
* ``fault-<pid>``: ``faulthandler``'s output (all threads), when the component
  has not enabled ``faulthandler`` itself. Without the runner a plain Python
  prints nothing on a segfault, so nothing is taken from the component's stderr.

Only the component's top process does this: its end is the component's end.
"""

from __future__ import annotations

import _thread  # not ``threading``: a component that starts no thread does not import it for us
import mmap
import os
from _struct import Struct

from . import streams

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Bytes of stderr the ring keeps.
SIZE = 8192
_HEADER = Struct("<Q")  # bytes ever written: the ring's next position is that modulo SIZE


#: Files ``<folder>/stderr-<pid>``: the top process's stderr ring (only the top process keeps one).
STDERR_PREFIX = "stderr-"


def stderr_file(folder: str, pid: int) -> str:
    return os.path.join(folder, f"{STDERR_PREFIX}{pid}")


def fault_file(folder: str, pid: int) -> str:
    return os.path.join(folder, f"fault-{pid}")


class Ring:
    """The last :data:`SIZE` bytes written, in a shared map of ``path``."""

    def __init__(self, path: str) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, _HEADER.size + SIZE)
            self._map = mmap.mmap(fd, _HEADER.size + SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        self._written = 0
        self._lock = _thread.allocate_lock()

    def add(self, data: bytes) -> None:
        # Never waits: a write from a signal handler that interrupted another write is not copied.
        if not self._lock.acquire(blocking=False):
            return
        try:
            data = data[-SIZE:]
            start = self._written % SIZE
            first = min(len(data), SIZE - start)
            base = _HEADER.size
            self._map[base + start : base + start + first] = data[:first]
            if first < len(data):
                self._map[base : base + len(data) - first] = data[first:]
            self._written += len(data)
            _HEADER.pack_into(self._map, 0, self._written)
        finally:
            self._lock.release()


def read_ring(path: str) -> bytes:
    """What a :class:`Ring` at ``path`` holds, oldest byte first (the runner reads it after the end)."""
    try:
        with open(path, "rb") as file:
            raw = file.read()
    except OSError:
        return b""
    if len(raw) < _HEADER.size + SIZE:
        return b""
    (written,) = _HEADER.unpack_from(raw, 0)
    ring = raw[_HEADER.size : _HEADER.size + SIZE]
    if written <= SIZE:
        return ring[:written]
    start = written % SIZE
    return ring[start:] + ring[:start]


class _Installed:
    #: The copy :mod:`.streams` hands stderr to, and the file ``faulthandler`` writes to.
    copy: Any = None
    fault: Any = None


def install(folder: str) -> None:
    """Keep this process's stderr tail and fatal-error stack in ``folder`` (the top process calls this)."""
    import faulthandler

    pid = os.getpid()
    ring = Ring(stderr_file(folder, pid))

    def keep(text: str) -> None:
        ring.add(text.encode("utf-8", "backslashreplace"))

    _Installed.copy = keep
    streams.copy("stderr", keep)
    if not faulthandler.is_enabled():
        _Installed.fault = open(fault_file(folder, pid), "w", encoding="utf-8")  # noqa: SIM115 - kept for its fd
        faulthandler.enable(_Installed.fault, all_threads=True)


def after_fork_in_child() -> None:
    """A forked child is not the component: its writes are not the component's last words."""
    import faulthandler

    if _Installed.copy is not None:
        streams.forget(_Installed.copy)
        _Installed.copy = None
    if _Installed.fault is not None and faulthandler.is_enabled():
        faulthandler.disable()
        _Installed.fault = None
