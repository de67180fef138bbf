"""spawn.start and Child: the component started as subprocess.Popen would start it.

Two ways, held to the same behaviour: ``posix_spawn`` (nothing of the runner's
runs in the child) and ``fork`` + ``exec`` (a step before ``exec``, ``prepare``).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from splight_runner.supervisor import spawn

#: ``prepare`` for each way: None spawns, a step that does nothing forks.
WAYS = pytest.mark.parametrize("prepare", [None, lambda: None], ids=["spawn", "fork"])


def _wait(child: spawn.Child, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while (code := child.poll()) is None:
        assert time.monotonic() < deadline, "the child did not end"
        time.sleep(0.01)
    return code


@WAYS
def test_the_exit_code_and_the_signal_that_ended_it_are_read_as_popen_reads_them(prepare) -> None:
    assert _wait(spawn.start([sys.executable, "-c", "raise SystemExit(3)"], env=os.environ, prepare=prepare)) == 3
    child = spawn.start([sys.executable, "-c", "import time; time.sleep(30)"], env=os.environ, prepare=prepare)
    child.send_signal(signal.SIGTERM)
    assert _wait(child) == -signal.SIGTERM
    child.kill()  # reaped: nothing is sent to a pid that may be another process's now


@WAYS
def test_a_missing_program_is_file_not_found_and_leaves_no_child(prepare) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        spawn.start(["/nonexistent/python3", "main.py"], env=os.environ, prepare=prepare)
    assert caught.value.filename == "/nonexistent/python3"
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # the failed child was reaped


@WAYS
def test_a_file_that_is_not_executable_is_permission_error(prepare, tmp_path: Path) -> None:
    script = tmp_path / "main.py"
    script.write_text("print('hi')\n")
    with pytest.raises(PermissionError):
        spawn.start([str(script)], env=os.environ, prepare=prepare)


def test_a_step_before_exec_that_fails_fails_the_start() -> None:
    def prepare() -> None:
        raise OSError(13, "refused")

    with pytest.raises(PermissionError):
        spawn.start([sys.executable, "-c", "pass"], env=os.environ, prepare=prepare)


def test_a_program_is_found_on_the_path_of_the_environment_it_gets(tmp_path: Path) -> None:
    tool = tmp_path / "my-tool"
    tool.write_text(f"#!{sys.executable}\nraise SystemExit(7)\n")
    tool.chmod(0o755)
    assert _wait(spawn.start(["my-tool"], env={**os.environ, "PATH": str(tmp_path)})) == 7
    assert spawn.which("my-tool", str(tmp_path)) == str(tool)
    assert spawn.which("my-tool", "/nonexistent") is None


@WAYS
def test_the_child_runs_in_its_folder_with_only_0_1_2_open(prepare, tmp_path: Path) -> None:
    inherited = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(inherited, True)  # what close_fds closes: a descriptor the runner's parent left open
    out = tmp_path / "out.txt"
    fds = "sorted(map(int, os.listdir('/proc/self/fd')))"
    code = f"import os; open({str(out)!r}, 'w').write(repr((os.getcwd(), {fds})))"
    try:
        child = spawn.start([sys.executable, "-c", code], env=os.environ, cwd=str(tmp_path), prepare=prepare)
        assert _wait(child) == 0
    finally:
        os.close(inherited)
    folder, fds = eval(out.read_text())  # our own repr
    assert folder == str(tmp_path)
    assert inherited not in fds and {0, 1, 2} <= set(fds)
    assert os.getcwd() != str(tmp_path)  # the runner's own folder is where it was


@WAYS
def test_a_missing_folder_fails_the_start_and_leaves_the_runner_where_it_was(prepare, tmp_path: Path) -> None:
    here = os.getcwd()
    with pytest.raises(FileNotFoundError):
        spawn.start([sys.executable, "-c", "pass"], env=os.environ, cwd=str(tmp_path / "gone"), prepare=prepare)
    assert os.getcwd() == here


@WAYS
def test_the_child_joins_the_group_it_is_given_or_leads_its_own_when_that_group_is_gone(prepare) -> None:
    leader = spawn.start([sys.executable, "-c", "import os, time; os.setpgid(0, 0); time.sleep(30)"], env=os.environ)
    try:
        deadline = time.monotonic() + 10
        while os.getpgid(leader.pid) != leader.pid:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
        member = spawn.start(sleeper, env=os.environ, group=leader.pid, prepare=prepare)
        assert os.getpgid(member.pid) == leader.pid
        member.kill()
        _wait(member)
    finally:
        leader.kill()
        _wait(leader)
    orphan = spawn.start(sleeper, env=os.environ, group=leader.pid, prepare=prepare)  # reaped: no such group
    try:
        assert os.getpgid(orphan.pid) == orphan.pid
    finally:
        orphan.kill()
        _wait(orphan)


@WAYS
def test_signals_python_ignores_for_itself_are_back_at_their_defaults_in_the_child(prepare, tmp_path: Path) -> None:
    # Python ignores SIGPIPE and SIGXFSZ in the runner; a program it starts must not inherit that
    # (a shell pipeline into `head` would never end). grep reads the mask it inherited through sh.
    out = tmp_path / "status.txt"
    command = ["/bin/sh", "-c", f"grep SigIgn /proc/self/status > {out}"]
    assert _wait(spawn.start(command, env=os.environ, prepare=prepare)) == 0
    ignored = int(out.read_text().split()[1], 16)
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN
    assert not ignored & (1 << (signal.SIGPIPE - 1))
    assert not ignored & (1 << (signal.SIGXFSZ - 1))
