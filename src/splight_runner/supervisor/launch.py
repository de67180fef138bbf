"""The runner stays the component's parent: it forwards signals, passes the exit
code through, hosts the export pipeline, and ends it with the final status.

Why a parent at all (and not ``exec``): only a parent can see a SIGKILL, a
segfault or an OOM kill, and report ``Failed`` for a process that could not
report anything itself.

Signals are taken synchronously (``sigtimedwait``) rather than by Python
handlers, because that tells who sent them: a Ctrl-C from the terminal reaches
the whole foreground process group, so the component already has it and must
not get it twice.
"""

from __future__ import annotations

import _signal as signal  # the C module: ``signal`` builds enums of every signal (and imports enum) at every start
import contextlib
import gc
import os
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType

from splight_runner import environment as names
from splight_runner.diagnostics import say
from splight_runner.pipeline.ending import owes_last_words
from splight_runner.settings import (
    DEFAULT_EXPORT_TIMEOUT_MS,
    DEFAULT_STOP_GRACE,
    ConfigError,
    DeliverySettings,
    EngineSettings,
    apply_distro_defaults,
)
from splight_runner.supervisor import spawn
from splight_runner.supervisor.ending import OomWatch, last_words

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NamedTuple
else:
    from splight_runner._tuples import NamedTuple


FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: Seconds within which a second copy of the same signal is the same signal (see ``supervise``).
SAME_SIGNAL_WINDOW = 0.05
_SI_KERNEL = 0x80  # si_code of a signal the kernel generated (terminal keys), not kill(2)

#: The folder put first on the component's PYTHONPATH: the bootstrap ``sitecustomize`` and its
#: standard-library-only package ``splight_capture``, nothing else (never the runner's site-packages).
BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "bootstrap")


class PipelineSpec(NamedTuple):
    """What the supervisor's export pipeline needs, read and checked by the CLI before the start."""

    exporter_names: tuple[str, ...]
    engine: EngineSettings | None
    process_id: str | None
    process_type: str
    delivery: DeliverySettings
    code_attributes: bool = False


class Launch(NamedTuple):
    """What to start and how to report on it.

    Everything the supervisor imports before it starts the component delays the
    component: this module keeps to what starting it and the signal loop need; the
    SDK is imported in a thread once the component runs.
    """

    argv: list[str]
    cwd: str | None = None
    env_overrides: Mapping[str, str] = MappingProxyType({})
    pipeline: PipelineSpec | None = None  # None: nothing is exported (OTEL_LOGS_EXPORTER=none)
    export_timeout: float = DEFAULT_EXPORT_TIMEOUT_MS / 1000
    stop_grace: float = DEFAULT_STOP_GRACE
    #: ``argv`` starts the component's Python with the bootstrap, which asks for the parent-death signal
    #: itself (``SPLIGHT_RUNNER_PARENT``): nothing has to run between fork and exec, so it is spawned.
    #: Any other program gets the signal set before its ``exec``, on a fork.
    bootstrap_follows_the_runner: bool = False


def child_environment(
    base: Mapping[str, str],
    overrides: Mapping[str, str],
    channel: str | None,
    resource: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The component's environment: the bootstrap first on ``PYTHONPATH``, the channel, the distro's defaults.

    ``resource`` (the component's resource attributes) is handed over for the spans the
    component's own SDK exports, so that they and the records carry the same resource.
    """
    env = dict(base)
    env.update(overrides)
    apply_distro_defaults(env)
    if resource is not None:
        from splight_runner.pipeline.resource import resource_text

        env[names.SPLIGHT_RUNNER_RESOURCE] = resource_text(resource)
    python_path = [p for p in env.get(names.PYTHONPATH, "").split(os.pathsep) if p and p != BOOTSTRAP_DIR]
    env[names.PYTHONPATH] = os.pathsep.join([BOOTSTRAP_DIR, *python_path])
    env[names.SPLIGHT_RUNNER_ACTIVE] = "1"
    env.pop(names.SPLIGHT_RUNNER_TOP_PROCESS, None)
    env.pop(names.SPLIGHT_RUNNER_PARENT, None)  # set by ``supervise`` for a component it spawns
    if channel is not None:
        env[names.SPLIGHT_RUNNER_CHANNEL] = channel
    else:
        env.pop(names.SPLIGHT_RUNNER_CHANNEL, None)
    return env


def exit_code(returncode: int) -> int:
    """Shell convention: killed by signal N → 128+N."""
    return 128 - returncode if returncode < 0 else returncode


def _remove_state_dir(state_dir: str) -> None:
    """The channel socket and anything else left in the runner's private folder (no ``shutil`` needed)."""
    with contextlib.suppress(OSError):
        for name in os.listdir(state_dir):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(state_dir, name))
        os.rmdir(state_dir)


def _resource(spec: PipelineSpec | None) -> dict[str, str] | None:
    from splight_runner.pipeline.resource import resource_attributes

    if spec is None:
        return None
    return resource_attributes(spec.process_id, spec.process_type)


def _build_then_collect(spec: PipelineSpec) -> Any:
    try:
        return build_pipeline(spec)
    finally:
        start_up_done()


def start_up_done() -> None:
    """The runner's start-up is over (its modules imported, the pipeline built): collect garbage from now on.

    ``cmd_run_component`` turned the collector off: the start-up allocates the
    objects the runner keeps for its life (modules, classes, functions), and the
    collections their number triggers found nothing to free and cost it a tenth
    of its CPU. They are moved out of the collector's sight (``gc.freeze``), so
    that no later collection walks them either.
    """
    gc.freeze()
    gc.enable()


def build_pipeline(spec: PipelineSpec) -> Any:
    """The component's log pipeline, in this process (runs in a thread while the component starts).

    No OpenTelemetry module is imported when the Engine is the only destination
    (see :func:`splight_runner.pipeline.logs.build`).
    """
    from splight_runner.pipeline import logs
    from splight_runner.pipeline.resource import resource_attributes

    def delivery_kwargs() -> dict[str, Any]:
        return {
            "engine": spec.engine,
            "process_id": spec.process_id,
            "sender_type": spec.process_type,
            "timeout": spec.delivery.export_timeout,
        }

    def engine_queue() -> Any:
        from splight_runner.pipeline.delivery import EngineDelivery
        from splight_runner.pipeline.dispatch import EngineQueue

        return EngineQueue(EngineDelivery(**delivery_kwargs()), settings=spec.delivery)

    def splight_processor() -> Any:
        from splight_runner.pipeline.exporter import SplightLogExporter
        from splight_runner.pipeline.processor import SplightLogRecordProcessor

        return SplightLogRecordProcessor(SplightLogExporter(**delivery_kwargs()), settings=spec.delivery)

    attributes = resource_attributes(spec.process_id, spec.process_type)
    if list(spec.exporter_names) != [logs.SPLIGHT]:
        from opentelemetry.instrumentation.version import __version__ as version

        attributes["telemetry.auto.version"] = version
    return logs.build(
        spec.exporter_names,
        attributes,
        make_splight_processor=splight_processor,
        make_engine_queue=engine_queue,
        process_type=spec.process_type,
        code_attributes=spec.code_attributes,
    )


class _GroupLeader:
    """A process group for the component that the component does not lead.

    Why not simply ``setpgid(0, 0)`` in the component: a process group leader
    cannot call ``setsid()``, and daemonizing code does (without the runner the
    component is not a leader, so it can). So another process leads the group,
    the component joins it as it starts, and the leader is then reaped; the group
    lives on with the component in it.

    The leader only has to exist when the component joins, and a process that
    ended but was not reaped yet still holds its group: so, where it can, the
    runner spawns ``true`` into a group of its own and reaps it once the
    component joined (a spawn costs the runner nothing of its heap, see
    :mod:`.spawn`). Else a forked process leads, waiting on a pipe until the
    runner lets go.
    """

    def __init__(self) -> None:
        self._write: int | None = None
        pid = self._spawned() or self._forked()
        self.pgid = self._pid = pid

    @staticmethod
    def _spawned() -> int | None:
        if not spawn.CAN_SPAWN or signal.getsignal(signal.SIGCHLD) == signal.SIG_IGN:
            return None  # children reaped by the kernel as they end: none would hold the group
        program = spawn.which("true", "/usr/bin:/bin")
        if program is None:
            return None
        try:
            return os.posix_spawn(program, [program], {}, setpgroup=0)
        except OSError:
            return None

    def _forked(self) -> int:
        read, self._write = os.pipe()
        pid = os.fork()  # the runner has no other thread yet
        if pid == 0:
            try:
                os.close(self._write)
                with contextlib.suppress(OSError):
                    os.setpgid(0, 0)
                os.read(read, 1)  # until the runner lets go
            finally:
                os._exit(0)
        os.close(read)
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)  # whichever of the two runs first
        return pid

    def release(self) -> None:
        if self._write is not None:
            with contextlib.suppress(OSError):
                os.close(self._write)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self._pid, 0)


def _parent_death_signal() -> Callable[[], None] | None:
    """The step before a program's ``exec``: the kernel is to send it SIGTERM if the runner dies (Linux).

    For a program whose bootstrap does not ask for it itself (see ``Launch``). The
    call is looked up here, in the runner: the child of a fork only makes it."""
    from splight_runner.bootstrap.splight_capture import parent

    prctl = parent.prctl_function()
    if prctl is None:
        return None
    runner = os.getpid()

    def set_parent_death_signal() -> None:
        parent.follow(runner, prctl)

    return set_parent_death_signal


#: Of the stop grace, what is kept for the exit report after the last deliveries are given up on.
_REPORT_TIME = 0.2

#: Niceness of the runner's threads after the start: its export work can wait, the component cannot.
RUNNER_NICENESS = 10


def _yield_to_the_component() -> None:
    """Lower this thread's CPU priority (and so of the threads it starts next: reader, pipeline).

    On a machine where the component and the runner compete for a core, the
    component's logging calls then run first, and the runner catches up from its
    intake (bounded in bytes) when the component pauses. When a core is free the
    niceness changes nothing. Lowering one's own priority needs no privilege.
    """
    with contextlib.suppress(OSError, AttributeError):
        os.nice(RUNNER_NICENESS)


def _reap_orphans(child_pid: int) -> None:
    """As PID 1, collect orphaned processes that were re-parented to us (never the component itself)."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or info.si_pid == 0 or info.si_pid == child_pid:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(info.si_pid, 0)


class _Signals:
    """Signals recorded before they are blocked; after that, read with sigtimedwait.

    A signal ignored when the runner started (``nohup``'s SIGHUP, a background job's SIGINT) is
    left ignored: the component inherits the disposition, as it would without the runner, and the
    runner neither takes nor forwards it.
    """

    def __init__(self) -> None:
        self.early: list[int] = []
        self.previous = {sig: signal.getsignal(sig) for sig in FORWARDED_SIGNALS}
        self.taken = tuple(sig for sig in FORWARDED_SIGNALS if self.previous[sig] != signal.SIG_IGN)

    def record(self, signum: int, frame: object) -> None:
        self.early.append(signum)

    def __enter__(self) -> _Signals:
        for sig in self.taken:
            signal.signal(sig, self.record)
        return self

    def block(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {*self.taken, signal.SIGCHLD})

    def __exit__(self, *exc: object) -> None:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {*self.taken, signal.SIGCHLD})
        for sig in self.taken:
            signal.signal(sig, self.previous[sig])


def _in_a_terminals_foreground() -> bool:
    """True when the runner is in the foreground process group of its terminal (a user at a shell)."""
    try:
        return os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        return False


def _new_folder(parent: str) -> str:
    """A new folder in ``parent`` that only this user can enter, with a name nobody could guess
    (what ``tempfile.mkdtemp`` makes, without importing ``tempfile`` and ``shutil`` at every start)."""
    parent = os.path.abspath(parent)
    for _ in range(100):
        folder = os.path.join(parent, "splight-runner-" + os.urandom(6).hex())
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            continue
        return folder
    raise FileExistsError(f"no new folder in {parent}")


def _private_folder() -> str:
    """A folder only this user can enter, short enough for a Unix socket path (107 bytes on Linux).

    ``TMPDIR`` first; when its path is too long for the socket, the system's own temporary
    folders. None fits: one line, before the component starts.
    """
    limit = 100 - len("/channel")
    tried = []
    for parent in (os.environ.get("TMPDIR"), "/tmp", "/var/tmp", "/dev/shm"):
        if not parent:
            continue
        try:
            folder = _new_folder(parent)
        except OSError:
            continue
        if len(os.fsencode(folder)) <= limit:
            return folder
        tried.append(folder)
        os.rmdir(folder)
    raise ConfigError(
        "no folder for the runner's socket: TMPDIR's path is too long for a Unix socket and "
        "/tmp, /var/tmp and /dev/shm are not writable; set TMPDIR to a shorter folder"
    )


def supervise(launch: Launch, base_env: Mapping[str, str] | None = None) -> int:
    """Run the component to its end, then end its pipeline; return the runner's exit code."""
    state_dir = _private_folder()
    host = None
    if launch.pipeline is not None:
        from splight_runner.supervisor.host import PipelineHost

        host = PipelineHost(state_dir)
    env = child_environment(
        os.environ if base_env is None else base_env,
        launch.env_overrides,
        host.path if host else None,
        resource=_resource(launch.pipeline),
    )
    if host is not None:
        env[names.SPLIGHT_RUNNER_STATE] = state_dir
    oom = OomWatch()
    oom.track(os.getpid())
    pid1 = os.getpid() == 1
    at_a_terminal = _in_a_terminals_foreground()
    try:
        with _Signals() as signals:
            try:
                # Outside a terminal's foreground (a container, systemd, `timeout`, a script), the component
                # gets a process group of its own: a signal sent to the runner's group then reaches the
                # runner alone, which forwards it once. At a terminal it shares the runner's group, so the
                # terminal's keys reach it as they would without the runner (and are not forwarded).
                leader = None if at_a_terminal else _GroupLeader()
                try:
                    follows = launch.bootstrap_follows_the_runner and spawn.CAN_SPAWN
                    if follows:
                        env[names.SPLIGHT_RUNNER_PARENT] = str(os.getpid())
                    child = spawn.start(
                        launch.argv,
                        cwd=launch.cwd,
                        env=env,
                        group=leader.pgid if leader else None,
                        prepare=None if follows else _parent_death_signal(),
                    )
                finally:
                    if leader is not None:
                        leader.release()
            except OSError as error:
                say(f"cannot start {launch.argv[0]}: {error.strerror or error}")
                return 127 if isinstance(error, FileNotFoundError) else 126
            signals.block()
            oom.track(child.pid)
            if host is not None:
                host.on_peer = oom.track
                spec = launch.pipeline
                _yield_to_the_component()
                host.start()
                host.start_pipeline(lambda: _build_then_collect(spec))
            else:
                start_up_done()
            stops = 0
            stop_deadline: float | None = None
            killed_for_grace = False
            # Of the stop grace, what is kept for the last records and the final status after the component ends.
            reserve = min(launch.export_timeout, launch.stop_grace / 4)

            last_signal = (0, -1.0)

            def deliver(signum: int, forward: bool) -> None:
                nonlocal stops, stop_deadline, last_signal
                now = time.monotonic()
                previous, last_signal = last_signal, (signum, now)
                if previous[0] == signum and now - previous[1] < SAME_SIGNAL_WINDOW:
                    # The same signal twice within moments is one signal sent two ways (GNU `timeout`
                    # signals its child and then its whole group): what the kernel would have merged
                    # had the first still been pending. Forwarding it again would interrupt the
                    # component's own clean-up; counting it would make it a second stop.
                    return
                if signum in STOP_SIGNALS:
                    stops += 1
                    if stop_deadline is None:
                        stop_deadline = time.monotonic() + launch.stop_grace
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
                # Blocked until a signal (SIGCHLD included) unless the stop grace runs: nothing runs meanwhile.
                wait: float | None = None
                if stop_deadline is not None and not killed_for_grace:
                    kill_at = stop_deadline - reserve
                    if time.monotonic() >= kill_at:
                        say(f"the component did not stop within {launch.stop_grace - reserve:g} s; killing it")
                        with contextlib.suppress(ProcessLookupError):
                            child.kill()
                        killed_for_grace = True
                    else:
                        wait = max(0.01, kill_at - time.monotonic())
                waited = {*signals.taken, signal.SIGCHLD}
                info = signal.sigwaitinfo(waited) if wait is None else signal.sigtimedwait(waited, wait)
                if info is None:
                    continue
                if info.si_signo == signal.SIGCHLD:
                    if pid1:
                        _reap_orphans(child.pid)
                    continue
                # A terminal's Ctrl-C reaches the whole foreground group: the component, in it, has it already.
                deliver(info.si_signo, forward=not (at_a_terminal and info.si_code == _SI_KERNEL))
            ended_at = time.monotonic()
            stop_requested = stops > 0
            returncode = child.returncode
            if host is not None:
                from splight_runner.pipeline.deadline import ExitDeadline

                give_up_at = ended_at + launch.export_timeout
                if stop_deadline is not None:
                    give_up_at = min(give_up_at, stop_deadline - _REPORT_TIME)
                deadline = ExitDeadline(give_up_at)
                with _StopsDuringTheEnd(deadline, launch.stop_grace, stopped_before=stop_requested):
                    words = None
                    if owes_last_words(returncode, stop_requested):
                        words = lambda shipped: last_words(returncode, state_dir, oom.killed(), shipped)  # noqa: E731
                    _end_pipeline(host, returncode, stop_requested, deadline, launch.pipeline, words)
        return exit_code(returncode)
    finally:
        if host is not None:
            host.close()
        _remove_state_dir(state_dir)


class _StopsDuringTheEnd:
    """Stop signals that arrive while the last records and the final status are sent.

    The component has ended, so there is nothing to forward; but the runner now
    has its stop grace to finish in (``docker stop`` kills it after that), so the
    exit deadline is brought forward to the grace's end, less the time the exit
    report needs. A second stop signal means "now": the deliveries still under
    way are given up on, and the report says what they held.
    """

    def __init__(self, deadline: Any, stop_grace: float, *, stopped_before: bool) -> None:
        self._deadline = deadline
        self._grace = stop_grace
        self._stops = 1 if stopped_before else 0
        self._done = False
        self._thread: Any = None

    def __enter__(self) -> _StopsDuringTheEnd:
        import threading

        # The stop signals are blocked in every thread of the runner; this one takes them.
        self._thread = threading.Thread(target=self._watch, name="splight-runner-stops", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # Not joined: the exit would wait up to one slice of the watch for nothing.
        self._done = True

    def _watch(self) -> None:
        while not self._done:
            info = signal.sigtimedwait(STOP_SIGNALS, 0.05)
            if info is None:
                continue
            self._stops += 1
            if self._stops == 1:
                self._deadline.bring_forward(time.monotonic() + self._grace - _REPORT_TIME)
            else:
                say("second stop signal: giving up on the last deliveries")
                self._deadline.bring_forward(time.monotonic())


def _end_pipeline(
    host: Any,
    returncode: int,
    stop_requested: bool,
    deadline: Any,
    spec: PipelineSpec,
    words: Callable[[str | None], tuple[Any, ...]] | None = None,
) -> None:
    from splight_runner.engine.records import exit_status, final_status, sends_status
    from splight_runner.pipeline.accounting import destination_label

    pipeline = host.finish(deadline)
    if host.connections_seen == 0:
        say(
            "the component never connected to the runner (it did not load the bootstrap: "
            "python -I or -S, or another interpreter): its records were not captured"
        )
    if pipeline is None:
        # Not built by the deadline (a loaded machine, a short export timeout) or failed to build
        # (said when it failed): nothing was delivered, and the exit line still says so.
        final = final_status(None, exit_status(returncode, stop_requested)) if sends_status(spec.process_type) else None
        what = [f"{host.dropped} log records"] if host.dropped else []
        what += [f"status {final}"] if final else []
        for name in spec.exporter_names if what else ():
            say(
                f"{destination_label(name)}: {' and '.join(what)} could not be delivered before exit "
                "(the export pipeline was not ready)"
            )
        return
    last = words(pipeline.uncaught_traceback) if words is not None else None
    pipeline.end(exit_status(returncode, stop_requested), deadline, lost_before=host.dropped, last_words=last)
