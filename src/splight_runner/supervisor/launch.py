"""The runner stays the component's parent: it forwards signals, passes the exit
code through, and owes the Engine a final status when the component ends.

Why a parent at all (and not ``exec``): only a parent can see a SIGKILL, a
segfault or an OOM kill, and report ``Failed`` for a process that could not
report anything itself.

Signals are taken synchronously (``sigtimedwait``) rather than by Python
handlers, because that tells who sent them: a Ctrl-C from the terminal reaches
the whole foreground process group, so the component already has it and must
not get it twice.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

from splight_runner import environment as names
from splight_runner.diagnostics import say
from splight_runner.settings import DEFAULT_EXPORT_TIMEOUT_MS, EngineSettings

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_SI_KERNEL = 0x80  # si_code of a signal the kernel generated (terminal keys), not kill(2)

#: The folder put first on the component's PYTHONPATH: it holds only the bootstrap ``sitecustomize``.
#: A path, not an import: the supervisor never imports the component side.
BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "component", "_bootstrap")


class Launch(NamedTuple):
    """What to start and how to report on it.

    Everything the supervisor imports before it starts the component delays the
    component: this module keeps to what ``Popen`` and the signal loop need.
    """

    argv: list[str]
    cwd: str | None = None
    env_overrides: Mapping[str, str] = MappingProxyType({})
    process_id: str | None = None
    engine: EngineSettings | None = None  # None: nothing is sent to the Engine
    final_status_timeout: float = DEFAULT_EXPORT_TIMEOUT_MS / 1000


def child_environment(base: Mapping[str, str], overrides: Mapping[str, str], state_file: str) -> dict[str, str]:
    env = dict(base)
    env.update(overrides)
    python_path = [p for p in env.get(names.PYTHONPATH, "").split(os.pathsep) if p and p != BOOTSTRAP_DIR]
    env[names.PYTHONPATH] = os.pathsep.join([BOOTSTRAP_DIR, *python_path])
    env[names.SPLIGHT_RUNNER_ACTIVE] = "1"
    env[names.SPLIGHT_RUNNER_STATE_FILE] = state_file
    env.setdefault(names.OTEL_LOGS_EXPORTER, "splight")
    return env


def exit_code(returncode: int) -> int:
    """Shell convention: killed by signal N → 128+N."""
    return 128 - returncode if returncode < 0 else returncode


def _remove_state_dir(state_dir: str) -> None:
    """The state file and any temporary file a killed component left beside it (no ``shutil`` needed)."""
    with contextlib.suppress(OSError):
        for name in os.listdir(state_dir):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(state_dir, name))
        os.rmdir(state_dir)


def _read_state(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read().strip() or None
    except OSError:
        return None


def send_final_status(engine: EngineSettings, process_id: str, status: str, timeout: float) -> bool:
    """The last status, with the exporter's retry policy, within ``timeout`` seconds."""
    from splight_runner.engine.client import EngineClient
    from splight_runner.engine.retry import Retrier

    client = EngineClient(engine, timeout=min(timeout, 10.0))
    give_up_at = time.monotonic() + timeout
    try:
        outcome = Retrier(say).call(
            lambda: client.update_status(process_id, status),
            deadline=lambda: give_up_at,
            what=f"final status {status}",
        )
    finally:
        client.close()
    return bool(outcome)


def _preload_client() -> None:
    """Everything the final status needs, imported while the component runs."""
    with contextlib.suppress(Exception):
        pass


class _Signals:
    """Signals recorded before they are blocked; after that, read with sigtimedwait."""

    def __init__(self) -> None:
        self.early: list[int] = []
        self.previous = {sig: signal.getsignal(sig) for sig in FORWARDED_SIGNALS}

    def record(self, signum: int, frame: object) -> None:
        self.early.append(signum)

    def __enter__(self) -> _Signals:
        for sig in FORWARDED_SIGNALS:
            signal.signal(sig, self.record)
        return self

    def block(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {*FORWARDED_SIGNALS, signal.SIGCHLD})

    def __exit__(self, *exc: object) -> None:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {*FORWARDED_SIGNALS, signal.SIGCHLD})
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def supervise(launch: Launch, base_env: Mapping[str, str] | None = None) -> int:
    """Run the component to its end; return the runner's exit code."""
    state_dir = tempfile.mkdtemp(prefix="splight-runner-")
    state_file = os.path.join(state_dir, "status")
    env = child_environment(os.environ if base_env is None else base_env, launch.env_overrides, state_file)
    try:
        with _Signals() as signals:
            try:
                child = subprocess.Popen(launch.argv, cwd=launch.cwd, env=env)
            except OSError as error:
                say(f"cannot start {launch.argv[0]}: {error.strerror or error}")
                return 127 if isinstance(error, FileNotFoundError) else 126
            signals.block()
            if launch.engine is not None:
                # The final status needs the HTTP client; importing it now, on the other core while
                # the component runs, keeps it off the path between the component's exit and ours.
                threading.Thread(target=_preload_client, name="splight-runner-preload", daemon=True).start()
            stops = 0

            def deliver(signum: int, forward: bool) -> None:
                nonlocal stops
                if signum in STOP_SIGNALS:
                    stops += 1
                    if stops >= 2:
                        # A component that ignores a stop (splight-lib hangs on SIGINT) can still be
                        # stopped: the second stop signal the runner gets is final.
                        say("second stop signal: killing the component")
                        with contextlib.suppress(ProcessLookupError):
                            child.kill()
                        return
                if forward:
                    with contextlib.suppress(ProcessLookupError):
                        child.send_signal(signum)

            for signum in signals.early:
                deliver(signum, forward=True)
            while child.poll() is None:
                info = signal.sigtimedwait({*FORWARDED_SIGNALS, signal.SIGCHLD}, 1.0)
                if info is None or info.si_signo == signal.SIGCHLD:
                    continue
                # A terminal's Ctrl-C reaches the whole process group: the component has it already.
                deliver(info.si_signo, forward=info.si_code != _SI_KERNEL)
            stop_requested = stops > 0
            returncode = child.returncode
        if launch.engine is not None and launch.process_id:
            from splight_runner.engine.records import TERMINAL_STATUSES, final_status

            last = _read_state(state_file)
            if last not in TERMINAL_STATUSES:
                status = final_status(returncode, stop_requested)
                send_final_status(launch.engine, launch.process_id, status, launch.final_status_timeout)
        return exit_code(returncode)
    finally:
        _remove_state_dir(state_dir)
