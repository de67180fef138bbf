"""Health hook: real components on the real splight-lib, in real subprocesses.

Each component runs twice at the same time: once under a tiny harness that
installs the hook (the callback appends ``<time> <status>`` lines to a file)
and once as plain ``python main.py``. The statuses, their timing against the
component's own output, and the component's output and exit code are checked;
the hook must change nothing but the reports.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.component_facing

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
COMPONENTS = Path(__file__).resolve().parents[1] / "components"

#: ``python -c`` harness: install the hook, then run main.py as ``python main.py`` would.
HARNESS = textwrap.dedent(
    """
    import os, runpy, sys, time
    from splight_runner.bootstrap.splight_capture import health

    _out = open(os.environ["HEALTH_STATUS_FILE"], "a", buffering=1)

    def report(status):
        _out.write(f"{time.time():.6f} {status}\\n")

    if os.environ.get("HEALTH_PREIMPORT"):
        import splight_lib.execution
    health.install(report)
    health.install(report)  # idempotent
    main = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path[0] = os.path.dirname(os.path.abspath(main))
    runpy.run_path(os.path.abspath(main), run_name="__main__")
    """
)


@dataclass
class Run:
    returncode: int
    stdout: list[tuple[float, str]] = field(default_factory=list)
    stderr: list[tuple[float, str]] = field(default_factory=list)
    statuses: list[tuple[float, str]] = field(default_factory=list)

    def first(self, text: str) -> float:
        """When the first stdout line containing ``text`` was read."""
        return next(t for t, line in self.stdout if text in line)

    def status_names(self) -> list[str]:
        return [s for _, s in self.statuses]

    def status_time(self, name: str) -> float:
        return next(t for t, s in self.statuses if s == name)


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPLIGHT_", "OTEL_", "HEALTH_"))}
    env.pop("PYTHONSTARTUP", None)
    env["HOME"] = str(home)  # splight-lib writes ~/.splight/config on import
    env["SPLIGHT_COMPONENT_LOG_FILE"] = str(home / "components.log")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def _pump(stream, sink: list[tuple[float, str]]) -> None:
    for line in stream:
        sink.append((time.time(), line.rstrip("\n")))


def _run(component: str, workdir: Path, hooked: bool, timeout: float = 60, **env: str) -> Run:
    """Run a component, time-stamping its output lines as they arrive."""
    workdir.mkdir(parents=True, exist_ok=True)
    status_file = workdir / "statuses"
    status_file.touch()
    cwd = COMPONENTS / component
    if hooked:
        cmd = [sys.executable, "-c", HARNESS, "main.py", "--component-id=C1"]
        env["HEALTH_STATUS_FILE"] = str(status_file)
    else:
        cmd = [sys.executable, "main.py", "--component-id=C1"]
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=_env(workdir, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run = Run(returncode=-1)
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, run.stdout)),
        threading.Thread(target=_pump, args=(proc.stderr, run.stderr)),
    ]
    for pump in pumps:
        pump.start()
    try:
        run.returncode = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pump in pumps:
            pump.join()
    for line in status_file.read_text().splitlines():
        stamp, status = line.split(" ", 1)
        run.statuses.append((float(stamp), status))
    return run


_VOLATILE = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"), "<TS>"),
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?( UTC)?"), "<TS>"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "<JOB>"),
    (re.compile(r"/(healthy|ready)_\w+"), r"/\1_<TMP>"),
    (re.compile(r"0x[0-9a-f]+"), "<ADDR>"),
]


def _normalized(lines: list[tuple[float, str]]) -> list[str]:
    """Lines without times, ids and addresses, sorted: threads may interleave differently."""
    out = []
    for _, line in lines:
        for pattern, repl in _VOLATILE:
            line = pattern.sub(repl, line)
        out.append(line)
    return sorted(out)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """All component runs at once: each takes 7-10 s, mostly splight-lib's own sleeps."""
    base = tmp_path_factory.mktemp("health")
    plan = {
        "failing": ("splight_failing_task", True, {}),
        "failing-plain": ("splight_failing_task", False, {}),
        "failing-preimport": ("splight_failing_task", True, {"HEALTH_PREIMPORT": "1"}),
        "finishing": ("splight_finishing", True, {}),
        "finishing-plain": ("splight_finishing", False, {}),
    }
    with ThreadPoolExecutor(len(plan)) as pool:
        futures = {
            name: pool.submit(_run, component, base / name, hooked, **env)
            for name, (component, hooked, env) in plan.items()
        }
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", ["failing", "failing-preimport"])
@pytest.mark.splight_lib
def test_failing_task_reports_running_then_failed_when_it_happens(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    assert run.status_names() == ["Running", "Failed"], run
    task_started = run.first("| working")
    failure_logged = run.first("An error occurred in job")
    # Running is set by ExecutionEngine.start(), just before the task's first run.
    assert abs(run.status_time("Running") - task_started) < 1.0
    # Failed comes with the failure (task raises 2 s after it starts), not at
    # the HealthCheckProcessor's next poll (5 s after start).
    assert abs(run.status_time("Failed") - failure_logged) < 1.0
    assert 1.5 < run.status_time("Failed") - task_started < 3.5
    # splight-lib ends a failed component with os._exit(1).
    assert run.returncode == 1


@pytest.mark.splight_lib
def test_finishing_reports_running_then_stopped(runs: dict[str, Run]) -> None:
    run = runs["finishing"]
    assert run.status_names() == ["Running", "Stopped"], run
    assert abs(run.status_time("Running") - run.first("| run 1")) < 1.0
    assert abs(run.status_time("Stopped") - run.first("Execution Engine stopped")) < 1.0
    assert run.returncode == 0


@pytest.mark.parametrize("name", ["failing", "finishing"])
@pytest.mark.splight_lib
def test_hook_changes_neither_output_nor_exit_code(runs: dict[str, Run], name: str) -> None:
    hooked, plain = runs[name], runs[f"{name}-plain"]
    assert hooked.returncode == plain.returncode
    assert _normalized(hooked.stdout) == _normalized(plain.stdout)
    assert _normalized(hooked.stderr) == _normalized(plain.stderr)
    assert plain.statuses == []


# --- programs that never import splight_lib ------------------------------------

PROBE = textwrap.dedent(
    """
    import importlib.util, json, pkgutil, sqlite3, sys, xml.etree.ElementTree
    for mod in (json, sqlite3, xml.etree.ElementTree):
        print(mod.__name__, type(mod.__loader__).__name__, type(mod.__spec__.loader).__name__)
    print(type(importlib.util.find_spec("email.mime.text").loader).__name__)
    print(len(pkgutil.get_data("json", "__init__.py")))
    try:
        import no_such_module_here
    except ImportError as exc:
        print(type(exc).__name__, exc, exc.name)
    print("splight_lib" in sys.modules, "apscheduler" in sys.modules)
    sys.exit(3)
    """
)


def _python(code: str, home: Path, hooked: bool, **env: str) -> subprocess.CompletedProcess[str]:
    prelude = ""
    if hooked:
        prelude = textwrap.dedent(
            """
            import os, time
            from splight_runner.bootstrap.splight_capture import health
            _out = open(os.environ["HEALTH_STATUS_FILE"], "a", buffering=1)
            health.install(lambda status: _out.write(status + "\\n"))
            """
        )
    env.setdefault("HEALTH_STATUS_FILE", str(home / "statuses"))
    return subprocess.run(
        [sys.executable, "-c", prelude + code],
        cwd=home,
        env=_env(home, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_hook_is_invisible_to_programs_without_splight_lib(tmp_path: Path) -> None:
    plain = _python(PROBE, tmp_path, hooked=False)
    hooked = _python(PROBE, tmp_path, hooked=True)
    assert plain.returncode == 3, plain.stderr
    assert (hooked.returncode, hooked.stdout, hooked.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    assert "False False" in hooked.stdout  # the hook imported neither
    assert not (tmp_path / "statuses").exists() or (tmp_path / "statuses").read_text() == ""


# --- state machine edge cases, against a stand-in splight_lib -------------------

FAKE_ENGINE = textwrap.dedent(
    """
    from enum import Enum

    class EngineStatus(str, Enum):
        RUNNING = "Running"
        STOPPED = "Stopped"
        FINISHED = "Finished"
        FAILED = "Failed"
        INITIALIZED = "Initialized"
        UNKNOWN = "Unknown"

    class ExecutionEngine:
        def __init__(self, initial=EngineStatus.UNKNOWN):
            self._state = initial

        @property
        def state(self):
            return self._state

        def healthcheck(self):
            return (self._state == EngineStatus.RUNNING, self._state.value)

        def start(self):
            self._state = EngineStatus.RUNNING
            return "started"

        def stop(self):
            self._state = EngineStatus.STOPPED

        def finish(self):
            self._state = EngineStatus.FINISHED

        def _task_fail_callback(self, event):
            self.stop()
            self._state = EngineStatus.FAILED
            if event == "raise":
                raise ValueError("from the listener")
    """
)


@pytest.fixture
def fake_lib(tmp_path: Path) -> Path:
    """A ``splight_lib`` with the 5.x engine's shape, first on the path."""
    pkg = tmp_path / "fake" / "splight_lib"
    (pkg / "execution").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "execution" / "__init__.py").write_text(
        "from splight_lib.execution.engine import EngineStatus, ExecutionEngine\n"
    )
    (pkg / "execution" / "engine.py").write_text(FAKE_ENGINE)
    return tmp_path / "fake"


def _fake_run(fake: Path, home: Path, code: str) -> list[str]:
    proc = _python(
        textwrap.dedent(code),
        home,
        hooked=False,
        PYTHONPATH=os.pathsep.join((str(fake), str(SRC))),
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_transitions_are_passed_through_deduplicated_and_coalesced(fake_lib: Path, tmp_path: Path) -> None:
    out = _fake_run(
        fake_lib,
        tmp_path,
        """
        import importlib.machinery, sys
        from splight_runner.bootstrap.splight_capture import health
        seen = []
        health.install(seen.append)
        health.install(seen.append)
        print(sum(1 for f in sys.meta_path if type(f).__name__ == "_Finder"))
        from splight_lib.execution import EngineStatus, ExecutionEngine
        import splight_lib.execution.engine as mod
        print(type(mod.__loader__).__name__, type(mod.__spec__.loader).__name__)
        e = ExecutionEngine()              # Unknown: never reported
        print(e.start())
        e.start()                          # same state: not reported twice
        e._task_fail_callback("event")     # Stopped then Failed: only Failed
        print(e.state, e.healthcheck(), vars(e)["_state"])
        ExecutionEngine(EngineStatus.INITIALIZED)
        ExecutionEngine(EngineStatus.STOPPED)  # a constructor cannot stop anything
        e.finish()
        try:
            e._task_fail_callback("raise")
        except ValueError as exc:
            print("raised", exc)
        print(seen)
        """,
    )
    assert out == [
        "1",
        "SourceFileLoader SourceFileLoader",
        "started",
        "EngineStatus.FAILED (False, 'Failed') EngineStatus.FAILED",
        "raised from the listener",
        "['Running', 'Failed', 'Initialized', 'Finished', 'Failed']",
    ]


def test_import_before_install_and_failing_callback(fake_lib: Path, tmp_path: Path) -> None:
    out = _fake_run(
        fake_lib,
        tmp_path,
        """
        from splight_lib.execution import ExecutionEngine
        from splight_runner.bootstrap.splight_capture import health

        def broken(status):
            raise RuntimeError("callback failure must not reach the component")

        health.install(broken)
        e = ExecutionEngine()
        print(e.start(), e.state)
        seen = []
        health.install(seen.append)
        e.stop()
        health.uninstall()
        e.start()                          # no reports after uninstall
        import sys
        print(any(type(f).__name__ == "_Finder" for f in sys.meta_path), seen)
        """,
    )
    assert out == ["started EngineStatus.RUNNING", "False ['Stopped']"]


def test_missing_target_module_fails_exactly_as_without_hook(fake_lib: Path, tmp_path: Path) -> None:
    (fake_lib / "splight_lib" / "execution" / "engine.py").unlink()
    (fake_lib / "splight_lib" / "execution" / "__init__.py").write_text("")
    code = """
        from splight_runner.bootstrap.splight_capture import health
        if HOOK:
            health.install(print)
        try:
            import splight_lib.execution.engine
        except ImportError as exc:
            print(type(exc).__name__, exc, exc.name)
        """
    plain = _fake_run(fake_lib, tmp_path, "HOOK = False\n" + textwrap.dedent(code))
    hooked = _fake_run(fake_lib, tmp_path, "HOOK = True\n" + textwrap.dedent(code))
    assert (
        plain
        == hooked
        == ["ModuleNotFoundError No module named 'splight_lib.execution.engine' splight_lib.execution.engine"]
    )
