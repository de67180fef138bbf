"""The bootstrap asks for the parent-death signal itself: the runner spawns the component with nothing in between.

``SPLIGHT_RUNNER_PARENT`` names the runner; the bootstrap asks the kernel for
SIGTERM should that process die, ends the component at once when it is already
gone, and takes the variable out of the environment so that no child of the
component asks on its behalf. End to end: a component under ``run-component``
has the signal set, no such variable, and a process group it does not lead.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from splight_runner.supervisor.launch import BOOTSTRAP_DIR
from support import engine_env, run_component, write_component

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")

#: What the component reports: its parent-death signal (PR_GET_PDEATHSIG), the variable, its group.
_REPORT = """
import ctypes, json, os
signal_number = ctypes.c_int()
ctypes.CDLL(None).prctl(2, ctypes.byref(signal_number))
print(json.dumps({
    "pdeathsig": signal_number.value,
    "variable": os.environ.get("SPLIGHT_RUNNER_PARENT"),
    "pid": os.getpid(),
    "pgid": os.getpgid(0),
    "ppid": os.getppid(),
}))
"""


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SPLIGHT_RUNNER")}
    environment.update(PYTHONPATH=BOOTSTRAP_DIR, **env)
    return subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=60)


def test_the_bootstrap_asks_for_sigterm_when_its_runner_dies_and_takes_the_variable_away() -> None:
    done = _python(_REPORT, SPLIGHT_RUNNER_PARENT=str(os.getpid()))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["pdeathsig"] == signal.SIGTERM
    assert report["variable"] is None


def test_a_component_whose_runner_is_already_gone_is_terminated_at_once() -> None:
    # The runner died between the spawn and the bootstrap: the component's parent is another process now.
    done = _python("print('ran')", SPLIGHT_RUNNER_PARENT=str(os.getpid() + 4_000_000))
    assert done.returncode == -signal.SIGTERM
    assert "ran" not in done.stdout


def test_without_the_variable_nothing_is_asked() -> None:
    done = _python(_REPORT)
    assert done.returncode == 0, done.stderr
    assert '"pdeathsig": 0' in done.stdout


def test_under_run_component_the_component_follows_its_runner_in_a_group_it_does_not_lead(dev_engine, tmp_path):
    main = write_component(tmp_path / "app", _REPORT)
    run = run_component(main, engine_env(dev_engine))
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["pdeathsig"] == signal.SIGTERM
    assert report["variable"] is None
    # Not at a terminal here: a group of its own (signals to the runner's group reach the runner alone),
    # which it does not lead (so it may call setsid(), as daemonizing code does).
    assert report["pgid"] != report["pid"]
    assert report["pgid"] != os.getpgid(0)


def test_a_program_without_the_bootstrap_gets_the_signal_before_its_exec(tmp_path):
    # `run -- CMD` starts any program: the runner forks and asks for the signal in the child (parent.py).
    from splight_runner.supervisor import launch, spawn

    out = tmp_path / "report.json"
    code = _REPORT.replace("print(json.dumps(", f"open({str(out)!r}, 'w').write(json.dumps(")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPLIGHT_RUNNER") and k != "PYTHONPATH"}
    child = spawn.start([sys.executable, "-c", code], env=env, prepare=launch._parent_death_signal())
    deadline = time.monotonic() + 30
    while child.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert child.returncode == 0
    assert json.loads(out.read_text())["pdeathsig"] == signal.SIGTERM
