"""Starting the component: ``fork`` and ``exec`` with the few steps the supervisor needs between them.

Why not :mod:`subprocess`: the runner starts for every component, and what it
imports is CPU that an idle component pays for nothing (``subprocess`` brings
``locale``, ``selectors`` and more: about a tenth of the runner's start-up).
The supervisor needs one child, started once, its exit status, and signals
sent to it; that is :func:`start` and :class:`Child`.

What ``subprocess.Popen`` does that matters here is kept: descriptors other
than 0-2 are closed in the child (``close_fds``), an ``exec`` that fails is an
:class:`OSError` raised in the runner (``FileNotFoundError`` for a missing
program), and the steps before ``exec`` (``prepare``) run in the child only.
"""

from __future__ import annotations

import _signal as signal  # the C module: ``signal`` builds enums of every signal (and imports enum) at every start
import contextlib
import os
import sys
from collections.abc import Callable, Mapping

#: Bytes of the errno an ``exec`` that failed reports through the pipe.
_ERRNO_BYTES = 4


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


def _close_inherited(keep: int) -> None:
    """In the child: close every descriptor but 0-2 and ``keep`` (``close_fds``).

    The open ones are listed in ``/proc/self/fd``: closing every number up to the
    limit would be a million calls in a container whose limit is 1,048,576 where
    Python cannot use ``close_range``.
    """
    try:
        numbers = [int(name) for name in os.listdir("/proc/self/fd")]
    except (OSError, ValueError):
        try:
            limit = max(os.sysconf("SC_OPEN_MAX"), 256)
        except (OSError, ValueError):
            limit = 256
        os.closerange(3, keep)
        os.closerange(keep + 1, limit)
        return
    for fd in numbers:
        if fd > 2 and fd != keep:
            with contextlib.suppress(OSError):  # the listing's own descriptor is closed already
                os.close(fd)


def start(
    argv: list[str],
    *,
    env: Mapping[str, str],
    cwd: str | None = None,
    prepare: Callable[[], None] | None = None,
) -> Child:
    """Start ``argv`` (``argv[0]`` a path, or a name looked up on ``env``'s ``PATH``).

    ``prepare`` runs in the child just before ``exec``; whatever it raises fails
    the start like an ``exec`` that fails. Call it while the runner has one
    thread (a fork copies only the calling thread, and any lock another held).
    """
    program = argv[0]
    if os.sep not in program:
        program = which(program, env.get("PATH", os.defpath)) or program
    environment = {os.fsencode(key): os.fsencode(value) for key, value in env.items()}
    read, write = os.pipe()  # both ends close on exec: the runner reads EOF when exec succeeds
    pid = os.fork()
    if pid == 0:  # the child: nothing here may return into the runner's code
        errno = 0
        try:
            os.close(read)
            # What Python set for itself at start-up is not the program's: SIGPIPE and SIGXFSZ
            # back to their defaults (``subprocess``'s ``restore_signals``).
            for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ"):
                if hasattr(signal, name):
                    signal.signal(getattr(signal, name), signal.SIG_DFL)
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
