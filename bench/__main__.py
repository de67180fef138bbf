"""``python -m bench``: run the rows, print progress on stderr and the table on stdout.

``--smoke`` runs every row with tiny sizes and one run each (< 60 s): CI uses it
to keep the suite working. It asserts nothing about speed; the exit status is 1
only when a row could not be measured (a component failed, records went
missing, a process did not start).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from bench.harness import DASH, TIMES, RowResult, progress, render
from bench.rows import ROWS, Context

OTEL_DISTRIBUTIONS = (
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation",
    "opentelemetry-exporter-otlp-proto-http",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            kib = int(meminfo.readline().split()[1])
        return f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        return "unknown"


def _commit() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return "unknown"
    commit = done.stdout.strip() or "unknown"
    return commit + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def machine() -> list[str]:
    """What the figures were measured on: they mean little without it."""
    versions = []
    for name in OTEL_DISTRIBUTIONS:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    try:
        load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        load = "unknown"
    import splight_runner

    source = Path(splight_runner.__file__).resolve().parents[2]
    where = "this checkout" if source == Path.cwd().resolve() else f"a copy at {source}"
    return [
        f"date:    {time.strftime('%Y-%m-%d %H:%M %Z')}",
        f"commit:  {_commit()}",
        f"runner:  splight-runner {splight_runner.__version__} imported from {where}",
        f"cpu:     {os.cpu_count()} {TIMES} {_cpu_model()}",
        f"memory:  {_memory()}",
        f"python:  {platform.python_implementation()} {platform.python_version()} ({sys.platform})",
        f"otel:    {', '.join(versions)}",
        f"load:    {load} (1, 5, 15 min, at start)",
    ]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one run each: checks the suite works")
    parser.add_argument("--runs", type=int, help="runs per configuration (default 5, smoke 1)")
    parser.add_argument(
        "--only",
        action="append",
        metavar="ROW",
        help=f"run only this row (repeatable or comma-separated): {', '.join(ROWS)}",
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ns = parser.parse_args(argv)
    if ns.runs is not None and ns.runs < 1:
        parser.error("--runs must be at least 1")
    selected = [name for item in ns.only or [] for name in item.split(",") if name]
    unknown = [name for name in selected if name not in ROWS]
    if unknown:
        parser.error(f"unknown row {', '.join(unknown)} (rows: {', '.join(ROWS)})")
    ns.selected = selected or list(ROWS)
    return ns


SMOKE_LINE = (
    "smoke run: tiny sizes, one run each; it checks that every row runs and measures nothing against "
    "the targets (make bench does)"
)


def compile_runner() -> None:
    """Byte-compile the runner's package first, as an install does: the measured processes run with
    ``PYTHONDONTWRITEBYTECODE=1`` (the components' folder stays clean), and a checkout without
    ``__pycache__`` would otherwise compile the runner's modules in every measured start-up."""
    import compileall

    import splight_runner

    compileall.compile_dir(os.path.dirname(splight_runner.__file__), quiet=1)


def main(argv: list[str] | None = None) -> int:
    ns = _parse(argv)
    ctx = Context(runs=ns.runs or (1 if ns.smoke else 5), smoke=ns.smoke)
    header = machine()
    for line in header:
        progress(line)
    if ctx.smoke:
        progress(SMOKE_LINE)
    progress(f"rows: {', '.join(ns.selected)}; {ctx.runs} run(s) each{' (smoke sizes)' if ctx.smoke else ''}")
    compile_runner()
    results: list[RowResult] = []
    for name in ns.selected:
        progress(f"{name}: starting")
        started = time.monotonic()
        try:
            result = ROWS[name](ctx)
        except Exception as error:  # one broken row must not hide the others
            result = RowResult(name, name, error=f"{type(error).__name__}: {error}")
        result.seconds = time.monotonic() - started
        progress(f"{name}: {'ERROR ' + result.error if result.error else 'done'} in {result.seconds:.1f}s")
        results.append(result)

    if ctx.smoke:
        print(SMOKE_LINE)
    print()
    for line in header:
        print(line)
    print(f"runs:    {ctx.runs} per configuration{' (smoke sizes)' if ctx.smoke else ''}; "
          f"figures are median (min{DASH}max) over runs")  # fmt: skip
    print()
    print(render(results, markdown=ns.markdown, judge=not ctx.smoke))
    for result in results:
        for note in result.notes:
            print(f"note: {note}")
    figures = [line for result in results for line in result.lines]
    missed = sum(1 for line in figures if line.ok is False)
    errors = [result.name for result in results if result.error]
    print()
    verdicts = (
        "targets not judged (smoke)"
        if ctx.smoke
        else f"{sum(1 for line in figures if line.ok)} targets met, {missed} missed"
    )
    print(f"{verdicts}, {len(errors)} rows with errors{': ' + ', '.join(errors) if errors else ''}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
