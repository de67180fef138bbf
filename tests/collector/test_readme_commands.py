"""Every shell command of collector-config/README.md works pasted into a clean shell.

The commands are taken from the README's ```sh blocks and run from the repository
root with `env -i` (only PATH, HOME and what the test says below), in bash, each with
the lines before it in its block (so `BIN=...` is defined for the lines after it).
Commands that build for minutes or install tools (`--force`, `go install`, the
builder by hand) and the test command itself are listed in NOT_RUN: a new command in
the README fails this test until it is run here or listed there. The command that runs
the agent in the foreground is started, must become healthy and stop cleanly on SIGTERM.
Nothing the agent logs may be its "paths were modified" rewrite warning.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from support import free_port

REPO = Path(__file__).resolve().parents[2]
README = REPO / "collector-config" / "README.md"
pytestmark = pytest.mark.collector

# Not run here, each for its reason.
NOT_RUN = {
    "python3 collector-config/build.py --force": "rebuilds the collector (minutes)",
    "go install go.opentelemetry.io/collector/cmd/builder@v0.160.0": "installs a tool into GOPATH",
    "cd collector-config && builder --config manifest.yaml": "a full build by hand (minutes)",
}
REWRITE_WARNING = "paths were modified to include their context prefix"


def readme_blocks() -> list[list[str]]:
    """The commands of each ```sh block: continuation lines joined, comments and blanks dropped."""
    blocks = []
    for body in re.findall(r"^```sh\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M):
        commands: list[str] = []
        pending = ""
        for line in body.splitlines():
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1].rstrip() + " "
                continue
            command = (pending + line.strip()).strip()
            pending = ""
            if command and not command.startswith("#"):
                commands.append(command)
        blocks.append(commands)
    return blocks


def without_comment(command: str) -> str:
    return re.sub(r"\s+#.*$", "", command).strip()


def is_foreground_agent(command: str) -> bool:
    return "--config collector-config/agent.yaml" in command and " validate " not in command


def clean_env(collector_binary: Path, home: Path, **extra: str) -> dict[str, str]:
    """What a fresh login shell has: a PATH with python3 (not `python`), a HOME."""
    env = {
        "PATH": os.pathsep.join(["/usr/bin", "/bin"]),
        "HOME": str(home),
        # The build the session's fixture found (HOME is a scratch folder here).
        "SPLIGHT_COLLECTOR_CACHE": str(collector_binary.parents[1]),
    }
    env.update(extra)
    return env


def test_readme_has_the_commands_this_test_knows() -> None:
    commands = {without_comment(c) for block in readme_blocks() for c in block}
    assert set(NOT_RUN) <= commands, set(NOT_RUN) - commands
    assert any(is_foreground_agent(c) for c in commands)
    assert not [c for c in commands if re.match(r"(\S+=\S+\s+)*python\s", c)], "bare `python` is not on a clean PATH"


def test_readme_commands_work_in_a_clean_shell(collector_binary: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    health = free_port()
    # The agent's listen addresses, so the test does not take the well-known ports.
    ports = {
        "SPLIGHT_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{free_port()}",
        "SPLIGHT_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{free_port()}",
        "SPLIGHT_HEALTH_CHECK_ENDPOINT": f"127.0.0.1:{health}",
        "SPLIGHT_COLLECTOR_METRICS_PORT": str(free_port()),
        "SPLIGHT_COMPONENT_LOG": str(tmp_path / "components.log"),
        "SPLIGHT_GATEWAY_ENDPOINT": f"http://127.0.0.1:{free_port()}",
    }
    ran = 0
    for block in readme_blocks():
        before: list[str] = []
        for command in block:
            if without_comment(command) in NOT_RUN:
                continue
            script = "\n".join(["set -e", *before, command])
            env = clean_env(collector_binary, home, **ports)
            if is_foreground_agent(command):
                run_agent(script, env, health, tmp_path / "agent.log")
            else:
                result = subprocess.run(
                    ["env", "-i", *(f"{k}={v}" for k, v in env.items()), "bash", "--noprofile", "--norc", "-c", script],
                    cwd=REPO,
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=False,
                )
                output = result.stdout + result.stderr
                assert result.returncode == 0, f"{command}\nexit {result.returncode}:\n{output}"
                assert "command not found" not in output, output
                assert REWRITE_WARNING not in output, output
            ran += 1
            before.append(command)
    assert ran >= 4


def run_agent(script: str, env: dict[str, str], health: int, log_path: Path) -> None:
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            ["env", "-i", *(f"{k}={v}" for k, v in env.items()), "bash", "--noprofile", "--norc", "-c", script],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the shell and the agent: one group to stop
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"the agent exited with {proc.returncode}:\n{log_path.read_text()}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{health}/", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            assert time.monotonic() < deadline, f"the agent never became healthy:\n{log_path.read_text()}"
            time.sleep(0.2)
        time.sleep(1)  # past the start, where the rewrite warning would be logged
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=30)
    text = log_path.read_text(errors="replace")
    assert REWRITE_WARNING not in text, text
    assert "\twarn\t" not in text and "\terror\t" not in text, text
    # bash waits for the agent, which exits 0 on SIGTERM; bash itself may be the one signalled.
    assert code in (0, -signal.SIGTERM, 128 + signal.SIGTERM), f"exit {code}:\n{text}"


def test_print_path_with_nothing_built_names_the_command_from_the_repository_root(tmp_path: Path) -> None:
    result = subprocess.run(
        ["python3", "collector-config/build.py", "--print-path"],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SPLIGHT_COLLECTOR_CACHE": str(tmp_path / "empty")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == "not built yet: run python3 collector-config/build.py"
