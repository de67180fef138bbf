"""Fixtures for the collector tests: the splight-otelcol binary and helpers to run it.

The binary is built from collector-config/manifest.yaml by collector-config/build.py
(cached by the manifest's sha256). A cold build takes minutes; CI can run
`python collector-config/build.py` before pytest so the build is not inside a test.
If the binary cannot be built the tests FAIL: a collector config nobody can run is
a broken deliverable, not an optional one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COLLECTOR_CONFIG = REPO / "collector-config"
BUILD_SCRIPT = COLLECTOR_CONFIG / "build.py"

# Generous: a cold build (module downloads + compile on 2 cores) takes minutes.
BUILD_TIMEOUT_SECONDS = int(os.environ.get("SPLIGHT_COLLECTOR_BUILD_TIMEOUT", "2700"))


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


@pytest.fixture(scope="session")
def collector_binary(request: pytest.FixtureRequest) -> Path:
    """Path of the splight-otelcol binary, building it first if needed (fails if it can't)."""
    found = subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--print-path"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if found.returncode == 0:
        path = Path(_last_line(found.stdout))
        if os.access(path, os.X_OK):
            return path

    # Show the build's progress lines live: it takes minutes.
    capman = request.config.pluginmanager.getplugin("capturemanager")
    log_lines: list[str] = []
    with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
        sys.stderr.write("\nbuilding the collector with collector-config/build.py (cached afterwards)\n")
        proc = subprocess.Popen(
            [sys.executable, str(BUILD_SCRIPT)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
        )
        assert proc.stdout is not None
        deadline = time.monotonic() + BUILD_TIMEOUT_SECONDS
        for line in proc.stdout:
            log_lines.append(line.rstrip())
            sys.stderr.write(line)
            sys.stderr.flush()
            if time.monotonic() > deadline:
                proc.kill()
                break
        proc.wait()
    if proc.returncode != 0:
        tail = "\n".join(log_lines[-40:])
        pytest.fail(f"collector-config/build.py failed (exit {proc.returncode}):\n{tail}", pytrace=False)
    path = Path(_last_line("\n".join(log_lines)))
    if not os.access(path, os.X_OK):
        pytest.fail(f"collector-config/build.py did not print a binary path (got {path!s})", pytrace=False)
    return path


class Collector:
    """One running collector process (started and stopped by the test)."""

    def __init__(self, binary: Path, config: Path, env: dict[str, str], log_path: Path) -> None:
        self.binary = binary
        self.config = config
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        try:
            self.proc = subprocess.Popen(
                [str(self.binary), "--config", str(self.config)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_healthy(self, health_port: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"collector exited with {self.proc.returncode} before it was healthy:\n{self.log_text()}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"collector not healthy after {timeout}s:\n{self.log_text()}")

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"collector did not stop on SIGTERM within {timeout}s") from None


@pytest.fixture
def run_collector(collector_binary: Path, tmp_path: Path) -> Iterator:
    """Factory: run_collector(config, env) -> started Collector; all are stopped at teardown."""
    started: list[Collector] = []

    def start(config: Path, env: dict[str, str], name: str = "collector") -> Collector:
        collector = Collector(collector_binary, config, env, tmp_path / f"{name}-{len(started)}.log")
        started.append(collector)
        collector.start()
        return collector

    yield start
    for collector in started:
        with contextlib.suppress(AssertionError):
            collector.stop(timeout=15)
