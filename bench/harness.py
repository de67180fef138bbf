"""What every row shares: running components in fresh processes, samples, verdicts, the table.

Why subprocesses for everything measured: the runner's cost is mostly in
places a single process hides (start-up imports, background threads that take
the GIL, exit flushes, the supervisor), so each configuration starts from
nothing, exactly as the Engine would start it.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
COMPONENTS = BENCH_DIR / "components"
#: Components print exactly one line starting with this, carrying their own measurements as JSON.
RESULT_PREFIX = "BENCH_RESULT "
ACCESS_ID = "dev-access"
SECRET_KEY = "dev-secret"
COMPONENT_ID = "C1"
#: Variables of the caller's shell that would change what is measured.
_FOREIGN_PREFIXES = ("OTEL_", "SPLIGHT_", "COMPONENT_ID", "COMPUTE_NODE_ID", "AGENT_ID", "PROCESS_TYPE", "BENCH_")

#: Typography of the table, spelled out (ruff flags the bare characters as look-alikes).
TIMES = "\N{MULTIPLICATION SIGN}"
DASH = "\N{EN DASH}"
MINUS = "\N{MINUS SIGN}"

_started = time.monotonic()


def progress(message: str) -> None:
    """One line on stderr with the time since the suite started: a full run takes minutes."""
    print(f"[{time.monotonic() - _started:7.1f}s] {message}", file=sys.stderr, flush=True)


# --- samples and verdicts ----------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The issue's target for a figure: the text shown and the test on the median."""

    text: str
    check: Callable[[float], bool]


def at_most(limit: float, unit: str) -> Target:
    return Target(f"≤ {_format(limit, unit)}", lambda value: value <= limit)


def at_least(limit: float, unit: str) -> Target:
    return Target(f"≥ {_format(limit, unit)}", lambda value: value >= limit)


@dataclass
class Line:
    """One figure of a row: samples (one per run), its unit, its target (None: reported only)."""

    figure: str
    samples: list[float]
    unit: str
    target: Target | None = None
    detail: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def ok(self) -> bool | None:
        """True/False against the target (on the median), None when there is no target."""
        if self.target is None or not self.samples:
            return None
        return self.target.check(self.median)

    def value_text(self) -> str:
        if not self.samples:
            return "n/a"
        median = _format(self.median, self.unit)
        if len(self.samples) == 1:
            return median
        low, high = min(self.samples), max(self.samples)
        return f"{median} ({_format(low, self.unit, bare=True)}{DASH}{_format(high, self.unit, bare=True)})"

    def verdict(self) -> str:
        ok = self.ok
        return "" if ok is None else ("✓" if ok else "✗")


@dataclass
class RowResult:
    """What one row function produced, or the error that stopped it."""

    name: str
    title: str
    lines: list[Line] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0


def _format(value: float, unit: str, *, bare: bool = False) -> str:
    """Numbers as people read them: x1.07 (a ratio), 12.3 ms, 51,200 rec/s, 24.1 MiB."""
    if unit == "x":
        return f"{value:.2f}" if bare else f"{TIMES}{value:.2f}"
    if unit in ("rec/s", "B") or (not unit and value == int(value)):
        text = f"{value:,.0f}"
    elif unit == "MiB":
        text = f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
    elif abs(value) < 10:
        text = f"{value:.2f}"
    elif abs(value) < 100:
        text = f"{value:.1f}"
    else:
        text = f"{value:,.0f}"
    return text if bare or not unit else f"{text} {unit}"


def pairwise(a: Sequence[float], b: Sequence[float], op: Callable[[float, float], float]) -> list[float]:
    """Combine run i of one configuration with run i of the other (they ran back to back)."""
    return [op(x, y) for x, y in zip(a, b, strict=True)]


def ratios(measured: Sequence[float], baseline: Sequence[float]) -> list[float]:
    return pairwise(measured, baseline, lambda x, y: x / y if y else float("inf"))


def med(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


# --- the table ---------------------------------------------------------------------------


NOT_JUDGED = "(not judged in smoke)"


def render(results: Sequence[RowResult], *, markdown: bool, judge: bool = True) -> str:
    """The results table: one line per figure, median (min to max), target and a check mark.

    ``judge=False`` (smoke sizes) shows no target and no check mark: tiny sizes measure nothing.
    """
    header = ("row", "figure", f"median (min{DASH}max)", "target", "", "detail")
    rows: list[tuple[str, ...]] = []
    for result in results:
        if result.error is not None:
            rows.append((result.name, result.title, "ERROR", "", "✗", result.error))
            continue
        for index, line in enumerate(result.lines):
            rows.append(
                (
                    result.name if index == 0 else "",
                    line.figure,
                    line.value_text(),
                    (line.target.text if judge else NOT_JUDGED) if line.target else "reported",
                    line.verdict() if judge else "",
                    line.detail,
                )
            )
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
        return "\n".join(out)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    lines.insert(1, "-" * min(160, len(lines[0]) + 20))
    return "\n".join(lines)


# --- running components ------------------------------------------------------------------


def clean_environ() -> dict[str, str]:
    """The caller's environment without anything that would configure the runner or OTel."""
    return {key: value for key, value in os.environ.items() if not key.startswith(_FOREIGN_PREFIXES)}


def engine_env(engine_url: str, **extra: str) -> dict[str, str]:
    """What a component gets on a compute node, pointed at ``engine_url``."""
    env = clean_environ()
    env.update(
        SPLIGHT_PLATFORM_API_HOST=engine_url,
        SPLIGHT_ACCESS_ID=ACCESS_ID,
        SPLIGHT_SECRET_KEY=SECRET_KEY,
        SPLIGHT_RUNNER_SECRETS_DIR=str(BENCH_DIR / ".no-secrets-dir"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(extra)
    return env


def runner_command() -> list[str]:
    """``splight-runner`` as the Engine starts it: the console script beside this interpreter."""
    script = Path(sys.executable).with_name("splight-runner")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "splight_runner.cli"]


@dataclass
class Run:
    """One finished process: its wall time seen from outside and what the component reported."""

    wall: float
    returncode: int
    result: dict[str, Any]
    stdout: str
    stderr: str
    #: CPU seconds (user + system) of the process and every descendant it waited for.
    cpu: float = 0.0


class ComponentFailed(RuntimeError):
    """A measured process that did not end the way the row expects: the row errors."""


def _run(argv: list[str], *, cwd: Path, env: Mapping[str, str], timeout: float, expect_result: bool) -> Run:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        argv, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result: dict[str, Any] = {}
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX) :])
    if done.returncode != 0 or (expect_result and not result):
        command = " ".join(Path(a).name for a in argv[:3])
        raise ComponentFailed(f"{command}: exit {done.returncode}: {_why(done.stderr)}")
    return Run(wall, done.returncode, result, done.stdout, done.stderr, cpu)


def _why(stderr: str) -> str:
    """The line of a failed run's stderr that explains it: the component's error before the runner's."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    own = [line for line in lines if not line.startswith("splight-runner:")]
    return (own or lines or ["(no stderr)"])[-1].strip()


def run_component(
    name: str,
    env: Mapping[str, str],
    *,
    timeout: float = 300.0,
    expect_result: bool = True,
    prefix: Sequence[str] = (),
    runner: Sequence[str] | None = None,
) -> Run:
    """``splight-runner run-component bench/components/NAME --component-id=C1``.

    ``prefix`` goes before the command (``taskset -c 0``); ``runner`` replaces this
    checkout's ``splight-runner`` (the seed release's, from its own venv).
    """
    main = COMPONENTS / name
    command = list(runner) if runner is not None else runner_command()
    argv = [*prefix, *command, "run-component", str(main), f"--component-id={COMPONENT_ID}"]
    return _run(argv, cwd=COMPONENTS, env=env, timeout=timeout, expect_result=expect_result)


def run_plain(
    name: str, env: Mapping[str, str], *, timeout: float = 300.0, expect_result: bool = True, prefix: Sequence[str] = ()
) -> Run:
    """The same component as ``python NAME --component-id C1``: no runner at all."""
    argv = [*prefix, sys.executable, name, "--component-id", COMPONENT_ID]
    return _run(argv, cwd=COMPONENTS, env=env, timeout=timeout, expect_result=expect_result)


def run_command(argv: list[str], env: Mapping[str, str], *, timeout: float = 300.0, expect_result: bool = True) -> Run:
    """Any command, from the components folder (the stock ``opentelemetry-instrument``)."""
    return _run(argv, cwd=COMPONENTS, env=env, timeout=timeout, expect_result=expect_result)


def free_port() -> int:
    """A port nothing listens on (bound and released): an Engine that is down."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
