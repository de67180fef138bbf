"""Every exit path hands over what was captured: normal exit, ``os._exit``, SIGTERM, forked children.

A component that ends must not take its last records with it — the last lines
before a crash are the ones people read. Each path below ends in the installed
:class:`Ending`'s ``shutdown``, which is idempotent and bounded.

Under the runner the ending is short: write what the channel still holds to
the supervisor (which outlives us and owns the final status) and flush spans.
Under ``opentelemetry-instrument`` the whole pipeline is in this process, so
the ending drains it with the export deadline and, in the component's top
process, reports the final status from what it can see of its own ending
(``sys.exit``/``os._exit`` codes, uncaught exceptions, SIGTERM).

Signals: a SIGTERM handler is installed only in the component's top process,
only where SIGTERM had its default action, and a forked child resets it: a
pool worker that waits in C when its pool terminates it must die of SIGTERM as
it would without the runner — a Python handler would never run there, and the
worker would hang.
"""

from __future__ import annotations

import _signal as signal  # the C module: ``signal`` adds enums of every signal, milliseconds at every start
import _thread  # not ``threading``: a component that starts no thread does not import it for us
import atexit
import os
import sys

from .voice import say

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    class Ending(Protocol):
        def shutdown(self, watch: ExitWatch | None) -> None: ...

        def before_exec(self) -> None: ...

        def after_fork_in_child(self) -> None: ...


class ExitWatch:
    """How this process is ending, as far as it can tell from the inside (its status is the pipeline's rule)."""

    def __init__(self) -> None:
        self.code = 0
        self.stopped = False
        #: What ``sys.exit("text")`` printed (Python prints it on stderr and exits 1).
        self.text: str | None = None

    def note_exit(self, code: Any) -> None:
        if code is None:
            self.code = 0
        elif isinstance(code, int):
            self.code = code
        else:
            self.code = 1  # sys.exit("message") prints it and exits 1
            try:
                self.text = str(code)
            except Exception:
                self.text = None


class _State:
    ending: Ending | None = None
    watch: ExitWatch | None = None
    done = False
    lock = _thread.allocate_lock()
    sigterm_installed = False


_state = _State()


def install(ending: Ending, *, watch: ExitWatch | None = None, top_process: bool = True) -> None:
    """Hook ``atexit``, ``os._exit``, SIGTERM (top process only) and fork. Installed once per process."""
    first = _state.ending is None
    _state.ending = ending
    _state.watch = watch
    if not first:
        return

    atexit.register(_shutdown_current)

    real_exit = os._exit

    def _exit(code: int) -> None:  # splight-lib ends every run with os._exit
        try:
            if _state.watch is not None:
                _state.watch.note_exit(code)
            _shutdown_current()
        finally:
            real_exit(code)

    _exit.__wrapped__ = real_exit  # type: ignore[attr-defined]
    os._exit = _exit
    _hand_over_before_exec()

    if watch is not None:
        _watch_exit_paths()

    if top_process:
        try:  # ValueError outside the main thread
            if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
                signal.signal(signal.SIGTERM, _on_sigterm)
                _state.sigterm_installed = True
        except (ValueError, OSError):
            pass

    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)


def _hand_over_before_exec() -> None:
    """What is pending leaves before ``os.exec*`` replaces the process (a self-restart loses nothing).

    Every ``os.exec*`` function ends in ``os.execv`` or ``os.execve``, looked up in
    the ``os`` module when called, so wrapping those two covers them all. The new
    image loads the bootstrap again and connects anew; if the exec fails, nothing
    was closed and the process goes on as it was.
    """
    for name in ("execv", "execve"):
        real = getattr(os, name, None)
        if real is None:
            continue

        def exec_after_hand_over(*args: Any, _real: Any = real) -> Any:
            ending = _state.ending
            if ending is not None:
                try:
                    ending.before_exec()
                except Exception:
                    pass
            return _real(*args)

        exec_after_hand_over.__wrapped__ = real  # type: ignore[attr-defined]
        setattr(os, name, exec_after_hand_over)


def _watch_exit_paths() -> None:
    """Learn the exit code of an unsupervised component without changing what it does."""
    real_sys_exit = sys.exit

    def sys_exit(status: Any = None) -> None:
        if _state.watch is not None:
            _state.watch.note_exit(status)
        real_sys_exit(status)

    sys_exit.__wrapped__ = real_sys_exit  # type: ignore[attr-defined]
    sys.exit = sys_exit

    previous_hook = sys.excepthook

    def excepthook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
        watch = _state.watch
        if watch is not None:
            if issubclass(exc_type, KeyboardInterrupt):
                watch.stopped = True
            else:
                watch.note_exit(1)
        previous_hook(exc_type, exc, tb)

    sys.excepthook = excepthook


def _shutdown_current() -> None:
    # Never waits: a SIGTERM that lands while this thread is already ending (atexit, os._exit) must
    # not wait for a lock its own thread holds; the ending under way finishes the job.
    if not _state.lock.acquire(blocking=False):
        return
    try:
        if _state.done or _state.ending is None:
            return
        _state.done = True
    finally:
        _state.lock.release()
    try:
        _state.ending.shutdown(_state.watch)
    except Exception as error:
        say(f"flush at exit failed ({type(error).__name__}: {error})")


def _on_sigterm(signum: int, frame: Any) -> None:
    """Hand over, then die of SIGTERM as the component would have: same exit status."""
    if _state.watch is not None:
        _state.watch.stopped = True
    _shutdown_current()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _after_fork_in_child() -> None:
    _state.lock = _thread.allocate_lock()
    _state.done = False
    _state.watch = None  # a forked child is not the component: its end is not the component's
    if _state.sigterm_installed:
        try:
            if signal.getsignal(signal.SIGTERM) is _on_sigterm:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
        except (ValueError, OSError):
            pass
        _state.sigterm_installed = False
    if _state.ending is not None:
        _state.ending.after_fork_in_child()
