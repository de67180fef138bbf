"""Starting the component: ``posix_spawn`` where nothing has to run between fork and exec, else ``fork`` and ``exec``.

Why not :mod:`subprocess`: the runner starts for every component, and what it
imports is CPU that an idle component pays for nothing (``subprocess`` brings
``locale``, ``selectors`` and more: about a tenth of the runner's start-up).
The supervisor needs one child, started once, its exit status, and signals
sent to it; that is :func:`start` and :class:`Child`.

Why ``posix_spawn`` when it can: a ``fork`` of the runner copies its page
tables and write-protects every page of its heap, so the runner then takes a
page fault for each page it writes next (the pipeline it builds while the
component starts), and the child's Python code before ``exec`` copies pages
of its own. glibc's ``posix_spawn`` starts the child on the runner's memory
(``CLONE_VFORK``) and goes straight to ``exec``: a tenth of an idle
component's whole cost under the runner (``bench``'s ``idle`` row). What it
cannot do is run our code in the child, so a caller that needs that
(``prepare``: the parent-death signal for a program whose bootstrap does not
ask for it) gets ``fork``.

What ``subprocess.Popen`` does that matters here is kept on both paths:
descriptors other than 0-2 are closed in the child (``close_fds``), an ``exec``
that fails is an :class:`OSError` raised in the runner (``FileNotFoundError``
for a missing program), SIGPIPE and SIGXFSZ are back to their defaults
(``restore_signals``), and the child may join a process group.
"""

from __future__ import annotations

import _signal as signal  # the C module: ``signal`` builds enums of every signal (and imports enum) at every start
import contextlib
import os
import sys
from collections.abc import Callable, Mapping

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Bytes of the errno an ``exec`` that failed reports through the pipe.
_ERRNO_BYTES = 4
#: What Python set for itself at start-up that is not the program's (``subprocess``'s ``restore_signals``).
_RESTORED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signal, name))
#: ``posix_spawn`` is used where it is the kernel's vfork-and-exec (glibc on Linux).
CAN_SPAWN = sys.platform == "linux" and hasattr(os, "posix_spawn")


def which(name: str, path: str | None = None) -> str | None:
    """The first executable file called ``name`` on ``path`` (default: ``PATH``), as ``shutil.which`` finds it."""
    if os.sep in name:
        return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    folders = (os.environ.get("PATH", os.defpath) if path is None else path).split(os.pathsep)
    for folder in folders:
        candidate = os.path.join(folder or os.curdir, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


class Child:
    """A started process: its pid, its exit status once it ended, and signals sent to it.

    ``returncode`` is ``None`` while it runs, then its exit code, or ``-N`` when
    signal N ended it (as ``Popen.returncode``). Signals are never sent once it
    was reaped: its pid may belong to another process by then.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit code if the process ended (reaping it), else ``None``; never blocks."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                # Reaped elsewhere (SIGCHLD ignored by whoever started the runner): its status is
                # lost, and ``subprocess`` calls that 0 too.
                self.returncode = 0
                return self.returncode
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        """Send ``signum`` unless the process was reaped (``ProcessLookupError`` if it just ended)."""
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _inherited_descriptors() -> list[int] | None:
    """Descriptors above 2 that a child would inherit, None where they cannot be listed.

    The open ones are listed in ``/proc/self/fd``: trying every number up to the
    limit would be a million calls in a container whose limit is 1,048,576 where
    Python cannot use ``close_range``. The rest close on ``exec`` by themselves.
    """
    try:
        numbers = [int(name) for name in os.listdir("/proc/self/fd")]
    except (OSError, ValueError):
        return None
    inherited = []
    for fd in numbers:
        if fd > 2:
            with contextlib.suppress(OSError):  # the listing's own descriptor is closed already
                if os.get_inheritable(fd):
                    inherited.append(fd)
    return inherited


def _close_inherited(keep: int) -> None:
    """In the child of a fork: close what the program would inherit but 0-2 and ``keep`` (``close_fds``)."""
    inherited = _inherited_descriptors()
    if inherited is None:
        try:
            limit = max(os.sysconf("SC_OPEN_MAX"), 256)
        except (OSError, ValueError):
            limit = 256
        os.closerange(3, keep)
        os.closerange(keep + 1, limit)
        return
    for fd in inherited:
        if fd != keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def start(
    argv: list[str],
    *,
    env: Mapping[str, str],
    cwd: str | None = None,
    group: int | None = None,
    prepare: Callable[[], None] | None = None,
) -> Child:
    """Start ``argv`` (``argv[0]`` a path, or a name looked up on ``env``'s ``PATH``).

    ``group``: the process group the child joins (a group of its own when that
    group is gone). ``prepare`` runs in the child just before ``exec``; whatever it
    raises fails the start like an ``exec`` that fails. Call this while the runner
    has one thread: a fork copies only the calling thread (and any lock another
    held), and a spawn into ``cwd`` changes the runner's directory for its duration.
    """
    program = argv[0]
    if os.sep not in program:
        program = which(program, env.get("PATH", os.defpath)) or program
    environment = {os.fsencode(key): os.fsencode(value) for key, value in env.items()}
    if prepare is None and CAN_SPAWN:
        pid = _spawn(program, argv, environment, cwd, group)
        if pid is not None:
            return Child(pid)
    return _fork_exec(program, argv, environment, cwd, group, prepare)


def _spawn(
    program: str, argv: list[str], environment: dict[bytes, bytes], cwd: str | None, group: int | None
) -> int | None:
    """``posix_spawn``; None when this runner cannot (descriptors it cannot list, a directory it cannot return to)."""
    inherited = _inherited_descriptors()
    if inherited is None:
        return None
    closes = [(os.POSIX_SPAWN_CLOSE, fd) for fd in inherited]
    here = None
    if cwd is not None:
        try:
            # An O_PATH descriptor: the way back works even from a folder the runner may not list.
            here = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except (OSError, AttributeError):
            return None
    try:
        if cwd is not None:
            os.chdir(cwd)  # raises for a missing folder, as the child's chdir would
        options: dict[str, Any] = {"file_actions": closes, "setsigdef": _RESTORED_SIGNALS}
        if group is not None:
            options["setpgroup"] = group
        try:
            return os.posix_spawn(program, argv, environment, **options)
        except (PermissionError, ProcessLookupError):
            if group is None:
                raise
            # The group's leader is gone (killed from outside): a group of its own is the next best.
            options["setpgroup"] = 0
            return os.posix_spawn(program, argv, environment, **options)
    finally:
        if here is not None:
            try:
                os.fchdir(here)
            finally:
                os.close(here)


def _fork_exec(
    program: str,
    argv: list[str],
    environment: dict[bytes, bytes],
    cwd: str | None,
    group: int | None,
    prepare: Callable[[], None] | None,
) -> Child:
    read, write = os.pipe()  # both ends close on exec: the runner reads EOF when exec succeeds
    pid = os.fork()
    if pid == 0:  # the child: nothing here may return into the runner's code
        errno = 0
        try:
            os.close(read)
            for number in _RESTORED_SIGNALS:
                signal.signal(number, signal.SIG_DFL)
            if group is not None:
                try:
                    os.setpgid(0, group)
                except OSError:
                    os.setpgid(0, 0)  # the leader is gone: a group of its own is the next best
            if prepare is not None:
                prepare()
            if cwd is not None:
                os.chdir(cwd)
            _close_inherited(keep=write)
            os.execve(program, argv, environment)
        except OSError as error:
            errno = error.errno or 0
        except BaseException:
            errno = 0
        finally:
            try:
                os.write(write, errno.to_bytes(_ERRNO_BYTES, sys.byteorder, signed=True) + b"!")
            finally:
                os._exit(127)
    os.close(write)
    try:
        report = b""
        while chunk := os.read(read, 64):
            report += chunk
    finally:
        os.close(read)
    if not report:
        return Child(pid)
    os.waitpid(pid, 0)
    errno = int.from_bytes(report[:_ERRNO_BYTES], sys.byteorder, signed=True) if len(report) > _ERRNO_BYTES else 0
    if errno:
        raise OSError(errno, os.strerror(errno), program)
    raise OSError(f"the steps before starting {program} failed")
