"""Helpers the tests share: run real components under the real runner, against a real dev-engine."""

from __future__ import annotations

import contextlib
import os
import random
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splight_runner.dev_engine.server import DevEngine

RFC3339_MICROS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
ACCESS_ID = "dev-access"
SECRET_KEY = "dev-secret"
RUNNER = [sys.executable, "-m", "splight_runner.cli"]


def _ephemeral_ports() -> range:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as file:
            low, high = (int(part) for part in file.read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return range(low, high + 1)


def free_port() -> int:
    """A loopback TCP port nothing listens on, for a server another process will bind later.

    Not one the kernel hands out for ``bind(0)``: those come from the ephemeral range,
    where the local ports of outgoing connections come from too, so by the time the
    other process binds it a client socket (the test's own health checks included)
    may hold it. Ports outside that range are only ever taken by explicit binds.
    """
    ephemeral = _ephemeral_ports()
    candidates = [port for port in range(20000, 32768) if port not in ephemeral]
    if not candidates:
        candidates = [port for port in range(1024, 65536) if port not in ephemeral]
    for port in random.sample(candidates, min(200, len(candidates))):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port outside the ephemeral range")


def engine_env(engine: DevEngine, **extra: str) -> dict[str, str]:
    """The environment a component gets on a compute node, pointed at ``engine``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "SPLIGHT_", "COMPONENT_ID", "COMPUTE_NODE_ID", "AGENT_ID", "PROCESS_TYPE"))
    }
    env.update(
        SPLIGHT_PLATFORM_API_HOST=engine.url,
        SPLIGHT_ACCESS_ID=ACCESS_ID,
        SPLIGHT_SECRET_KEY=SECRET_KEY,
        SPLIGHT_RUNNER_SECRETS_DIR="/nonexistent-splight-secrets",
        OTEL_BLRP_SCHEDULE_DELAY="100",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def write_component(folder: Path, source: str, name: str = "main.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def run_component(
    main: Path,
    env: dict[str, str],
    *,
    component_id: str = "C1",
    args: list[str] | None = None,
    timeout: float = 60,
) -> Run:
    cmd = [*RUNNER, "run-component", str(main), f"--component-id={component_id}"]
    if args:
        cmd += ["--", *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    return Run(done.returncode, done.stdout, done.stderr)


def start_component(main: Path, env: dict[str, str], *, component_id: str = "C1") -> subprocess.Popen[str]:
    """``run-component`` in the background, its output piped, for tests that signal or time it."""
    return subprocess.Popen(
        [*RUNNER, "run-component", str(main), f"--component-id={component_id}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(stream: Any, text: str, timeout: float = 20) -> None:
    """Read ``stream`` until a line contains ``text``; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if text in line:
            return
        if not line:
            time.sleep(0.05)
    raise AssertionError(f"never saw {text!r}")


def run_plain(main: Path, env: dict[str, str], *, component_id: str = "C1", timeout: float = 60) -> Run:
    """The same component without the runner, for side-by-side comparison."""
    done = subprocess.run(
        [sys.executable, main.name, "--component-id", component_id],
        cwd=main.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def by_message(records: list[dict]) -> dict[str, dict]:
    return {record["message"]: record for record in records}


def engine_record(**overrides: Any) -> dict[str, Any]:
    """A valid Engine record (every field the Engine requires), with ``overrides`` applied."""
    base = {
        "sender_type": "component",
        "id": "C1",
        "name": "my.logger",
        "message": "hello",
        "loglevel": "INFO",
        "filename": "main.py",
        "traceback": "",
        "tags": None,
        "timestamp": "2024-05-01T12:00:00.123456Z",
    }
    base.update(overrides)
    return base


@contextlib.contextmanager
def busy_machine() -> Iterator[None]:
    """One more busy process than there are CPUs, for the duration: the runner's threads (at a
    lower priority than the component) get little CPU, as on a loaded compute node.

    Races between the runner's threads that a quiet machine hides show up here.
    """
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range((os.cpu_count() or 1) + 1)
    ]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait()


#: Every CPython the component side supports.
COMPONENT_PYTHONS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")


def find_cpython(minor: str) -> str | None:
    """The newest CPython ``minor`` (e.g. ``"3.8"``) on this machine: pyenv's, else ``python3.X`` on PATH."""
    import shutil

    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = sorted(
        (p for p in root.glob(f"{minor}.*") if p.name.replace(".", "").isdigit()),
        key=lambda p: [int(part) for part in p.name.split(".")],
        reverse=True,
    )
    paths = [str(p / "bin" / f"python{minor}") for p in candidates]
    on_path = shutil.which(f"python{minor}")
    if on_path:
        paths.append(on_path)
    for path in paths:
        try:
            done = subprocess.run(
                [path, "-c", "import sys; print(sys.implementation.name, '%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=20,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode == 0 and done.stdout.split() == ["cpython", minor]:
            return path
    return None


def bare_venv(python: str, folder: Path) -> Path:
    """A virtualenv of ``python`` with nothing installed in it (not even pip); its interpreter."""
    subprocess.run([python, "-m", "venv", "--without-pip", str(folder)], check=True, capture_output=True, timeout=120)
    return folder / "bin" / "python"


#: The bin/ folder of the Python running the tests (its ``opentelemetry-instrument``).
BIN = Path(sys.executable).parent


def instrument(main: Path, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``opentelemetry-instrument python main.py`` in ``main``'s folder, this venv's tools first on PATH."""
    env = {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}
    return subprocess.run(
        [str(BIN / "opentelemetry-instrument"), "python", main.name],
        cwd=main.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def read_request(conn: socket.socket) -> bytes | None:
    """One HTTP request from ``conn``, head and ``Content-Length`` body; None when the client closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next((int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length")), 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    return head + b"\r\n\r\n" + body


CREATED = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"


class ScriptedServer:
    """An HTTP server on 127.0.0.1 that reads each request whole and answers as scripted.

    For what a well-behaved DevEngine never does. The n-th request gets ``answers[n]``:
    bytes, a list of pieces sent 10 ms apart, or ``"drop"`` (the connection closed
    without a word); after an answer the connection stays open unless the next entry
    is ``"close"`` or ``"reset"`` (closed with a TCP reset). Past the script: 201.
    """

    def __init__(self, answers: list[bytes | list[bytes] | str]) -> None:
        self.answers = list(answers)
        self.requests = 0
        self.connections = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                while self._one(conn):
                    pass

    def _one(self, conn: socket.socket) -> bool:
        if read_request(conn) is None:
            return False
        self.requests += 1
        answer = self.answers.pop(0) if self.answers else CREATED
        if answer == "drop":
            return False
        for piece in answer if isinstance(answer, list) else [answer]:
            conn.sendall(piece)  # type: ignore[arg-type]
            if isinstance(answer, list):
                time.sleep(0.01)
        then = self.answers[0] if self.answers and self.answers[0] in ("close", "reset") else None
        if then is not None:
            self.answers.pop(0)
        if then == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        return then is None

    def close(self) -> None:
        self.server.close()
