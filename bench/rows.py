"""The rows of the benchmark table, one short function each.

Every function runs its configurations alternately (baseline, measured,
baseline, measured ...) so that a machine that gets busier during the suite
slows both sides of a ratio alike, and returns a :class:`RowResult`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from bench import stock
from bench.harness import (
    BENCH_DIR,
    COMPONENT_ID,
    MINUS,
    TIMES,
    ComponentFailed,
    Line,
    RowResult,
    Run,
    at_least,
    at_most,
    clean_environ,
    engine_env,
    free_port,
    med,
    pairwise,
    progress,
    ratios,
    run_command,
    run_component,
    run_plain,
    runner_command,
)
from bench.otlp_sink import OtlpSink
from splight_runner.dev_engine.server import DevEngine

MIB = 1024 * 1024
HEAVY_IMPORTS = "pandas,numpy,pydantic,httpx,splight_lib"


@dataclass(frozen=True)
class Context:
    """How much to measure: ``runs`` per configuration, and full or smoke sizes."""

    runs: int
    smoke: bool

    def size(self, full: int, smoke: int) -> int:
        return smoke if self.smoke else full


@contextlib.contextmanager
def _engine() -> Iterator[DevEngine]:
    """The project's own dev-engine, quiet (``out=None``), on a free port."""
    with DevEngine(out=None) as engine:
        yield engine


class _Recorded:
    """The JSON lines file a ``dev-engine --record`` writes, read as it grows."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._offset = 0
        self._count = 0

    def wait_for(self, n: int, logger: str, *, timeout: float) -> tuple[int, float]:
        """Wait until ``n`` records of ``logger`` were written; (how many, when the last was seen, monotonic)."""
        needle = f'"name": "{logger}"'.encode()
        compact = f'"name":"{logger}"'.encode()
        give_up = time.monotonic() + timeout
        seen_at = time.monotonic()
        while True:
            with open(self._path, "rb") as file:
                file.seek(self._offset)
                chunk = file.read()
            whole = chunk.rfind(b"\n") + 1
            if whole:
                lines = chunk[:whole]
                self._offset += whole
                found = lines.count(needle) + lines.count(compact)
                if found:
                    self._count += found
                    seen_at = time.monotonic()
            if self._count >= n or time.monotonic() > give_up:
                return self._count, seen_at
            time.sleep(0.005)


@contextlib.contextmanager
def _engine_process() -> Iterator[tuple[str, _Recorded]]:
    """``splight-runner dev-engine`` in its own process, writing what it receives to a file."""
    import tempfile

    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "received.jsonl")
        open(path, "wb").close()
        argv = [*runner_command(), "dev-engine", "--port", str(port), "--record", path, "--quiet"]
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=engine_env(""))
        try:
            assert process.stdout is not None
            process.stdout.readline()  # its listening line
            yield f"http://127.0.0.1:{port}", _Recorded(path)
        finally:
            process.terminate()
            process.wait(10)


def _logs_requests(engine: DevEngine) -> list[Any]:
    return [r for r in engine.requests if r.path.endswith("/logs/write/") and r.accepted]


def _received(engine: DevEngine, logger: str) -> int:
    return sum(1 for record in engine.records if record.get("name") == logger)


def _emit_records(n: int) -> int:
    """Records ``emit.py`` logs for ``BENCH_N=n``: its warm-up calls and the measured ones."""
    return n + min(500, n)


def _counting_emit(engine: DevEngine, run: Callable[[], Run]) -> Callable[[], Run]:
    """``run`` against an emptied Engine, with the ``bench.emit`` records it received as ``delivered``."""

    def step() -> Run:
        engine.clear()
        done = run()
        done.result["delivered"] = _received(engine, "bench.emit")
        return done

    return step


def _each_run(ctx: Context, row: str, *steps: tuple[str, Callable[[], Any]]) -> list[list[Any]]:
    """Run the steps alternately ``ctx.runs`` times; one list of outcomes per step."""
    outcomes: list[list[Any]] = [[] for _ in steps]
    for index in range(ctx.runs):
        for position, (label, step) in enumerate(steps):
            progress(f"{row}: run {index + 1}/{ctx.runs}: {label}")
            outcomes[position].append(step())
    return outcomes


def _us_per_call(runs: list[Run], key: str) -> float:
    return med(run.result[key] / run.result["n"] * 1e6 for run in runs)


# --- 1-3: emit cost on the component's thread ------------------------------------------------------


def _emit_lines(plain: list[Run], measured: list[Run], target: float | None, label: str) -> list[Line]:
    lines = []
    for key, what in (("wall", "wall (perf_counter)"), ("cpu", "thread CPU (thread_time)")):
        detail = f"plain {_us_per_call(plain, key):.1f} µs/call, {label} {_us_per_call(measured, key):.1f} µs/call"
        lines.append(
            Line(
                f"{what}, {label} ÷ plain",
                ratios([r.result[key] for r in measured], [r.result[key] for r in plain]),
                "x",
                at_most(target, "x") if target is not None else None,
                detail,
            )
        )
    return lines


def row_emit(ctx: Context) -> RowResult:
    """``logger.info`` to a StreamHandler, runner (dev-engine up) vs plain python."""
    result = RowResult("emit", "emit cost, runner on vs off")
    n = ctx.size(50_000, 2_000)
    with _engine() as engine:
        env = engine_env(engine.url, BENCH_N=str(n), BENCH_MODE="plain")

        runner = _counting_emit(engine, lambda: run_component("emit.py", env))
        # The hook alone: the channel discards full batches (nothing written to the runner).
        hook_env = {**env, "BENCH_MODE": "hook-only"}
        plain, measured, hook_only = _each_run(
            ctx,
            "emit",
            ("plain python", lambda: run_plain("emit.py", env)),
            ("run-component", runner),
            ("run-component, channel discarding", lambda: run_component("emit.py", hook_env)),
        )
    result.lines = _emit_lines(plain, measured, 1.15, "runner")
    hook_cpu = _emit_lines(plain, hook_only, None, "hook alone")[1]
    hook_cpu.figure = "thread CPU, hook alone (nothing handed over) ÷ plain"
    result.lines.append(hook_cpu)
    expected = _emit_records(n)
    delivered = med(run.result["delivered"] for run in measured)
    result.notes.append(f"emit: the Engine received {delivered:,.0f} of {expected:,} records (median of runs)")
    result.lines[0].detail += f"; Engine got {delivered:,.0f}/{expected:,}"
    return result


def row_emit_otlp(ctx: Context) -> RowResult:
    """Same, inside an active span, with ``OTEL_LOGS_EXPORTER=splight,otlp`` to a local OTLP sink."""
    result = RowResult("emit-otlp", "emit cost, span + splight,otlp")
    n = ctx.size(50_000, 2_000)
    with _engine() as engine, OtlpSink() as sink:
        env = engine_env(
            engine.url,
            BENCH_N=str(n),
            BENCH_MODE="span",
            OTEL_LOGS_EXPORTER="splight,otlp",
            OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        )

        def runner() -> Run:
            engine.clear()
            return run_component("emit.py", env)

        plain, measured = _each_run(
            ctx, "emit-otlp", ("plain python (span)", lambda: run_plain("emit.py", env)), ("run-component", runner)
        )
        if not sink.requests.get("/v1/logs"):
            raise ComponentFailed("the OTLP sink received no /v1/logs request: the otlp exporter did not run")
    result.lines = _emit_lines(plain, measured, 1.3, "runner")
    result.lines[0].detail += f"; OTLP sink got {sum(sink.requests.values())} requests"
    return result


def row_emit_stock(ctx: Context) -> RowResult:
    """Reference: the stock OTel LoggingHandler + BatchLogRecordProcessor, no runner."""
    result = RowResult("emit-stock", "emit cost, stock OTel handler (reference)")
    n = ctx.size(50_000, 2_000)
    env = clean_environ()
    env.update(BENCH_N=str(n), PYTHONDONTWRITEBYTECODE="1")
    stock_env = {**env, "BENCH_MODE": "otel-stock"}
    plain, measured = _each_run(
        ctx,
        "emit-stock",
        ("plain python", lambda: run_plain("emit.py", {**env, "BENCH_MODE": "plain"})),
        ("plain python + stock LoggingHandler", lambda: run_plain("emit.py", stock_env)),
    )
    result.lines = _emit_lines(plain, measured, None, "stock handler")
    return result


def row_emit_cheap(ctx: Context) -> RowResult:
    """A cheap call (StreamHandler on stdout, a pipe): plain vs this runner vs splight-runner 1.1.6 in its venv.

    Beside each runner's ratio, how many of the records its Engine received: the
    two do not do the same work in this row (1.1.6 sends what it queued in one
    call at exit, which the Engine refuses as too large).
    """
    result = RowResult("emit-cheap", "emit cost on a cheap call (stdout to a pipe)")
    n = ctx.size(50_000, 2_000)
    expected = _emit_records(n)
    seed_dir = stock.SEED.ready() if ctx.smoke else stock.SEED.ensure()
    with _engine() as engine:
        env = engine_env(engine.url, BENCH_N=str(n), BENCH_MODE="plain", BENCH_HANDLER="stdout")

        steps: list[tuple[str, Callable[[], Run]]] = [
            ("plain python", lambda: run_plain("emit.py", env)),
            ("run-component", _counting_emit(engine, lambda: run_component("emit.py", env))),
        ]
        if seed_dir is not None:
            seed = [str(seed_dir / "bin" / "splight-runner")]
            seed_env = {**env, "COMPONENT_ID": COMPONENT_ID, "PROCESS_TYPE": "component"}
            steps.append(
                (
                    f"splight-runner {stock.SEED_VERSION}",
                    _counting_emit(engine, lambda: run_component("emit.py", seed_env, runner=seed)),
                )
            )
        outcomes = _each_run(ctx, "emit-cheap", *steps)

    def delivered(runs: list[Run]) -> str:
        return f"; Engine got {med(run.result['delivered'] for run in runs):,.0f}/{expected:,}"

    plain, measured = outcomes[0], outcomes[1]
    seed_target = 1.3
    seed_lines: list[Line] = []
    if seed_dir is not None:
        seed_runs = outcomes[2]
        seed_lines = _emit_lines(plain, seed_runs, None, f"splight-runner {stock.SEED_VERSION}")
        seed_lines[0].detail += delivered(seed_runs)
        seed_target = min(1.3, med(ratios([r.result["wall"] for r in seed_runs], [r.result["wall"] for r in plain])))
    else:
        result.notes.append("emit-cheap: the seed venv was not created (smoke skips it; run the full suite once)")
    result.lines = _emit_lines(plain, measured, seed_target, "runner") + seed_lines
    result.lines[0].detail += delivered(measured)
    result.notes.append(
        f"emit-cheap: target is the seed release's own wall ratio in this run, at most x1.3 (here x{seed_target:.2f})"
    )
    return result


def row_burst(ctx: Context) -> RowResult:
    """100,000 records as fast as the component can log them, Engine up, default settings: all delivered?"""
    result = RowResult("burst", "burst, Engine up, default settings")
    n = ctx.size(100_000, 5_000)
    with _engine() as engine:
        env = engine_env(engine.url, BENCH_N=str(n))

        def burst() -> dict[str, float]:
            engine.clear()
            run = run_component("burst.py", env, timeout=600)
            return {"delivered": _received(engine, "bench.burst"), "loop": run.result["loop"], "wall": run.wall}

        (runs,) = _each_run(ctx, "burst", (f"run-component, {n:,} records", burst))
    result.lines.append(
        Line(
            "records delivered",
            [run["delivered"] / n * 100 for run in runs],
            "%",
            at_least(100, "%"),
            f"{n:,} records logged in {med(r['loop'] for r in runs):.2f} s; "
            f"run-component wall {med(r['wall'] for r in runs):.2f} s",
        )
    )
    return result


def row_sigkill(ctx: Context) -> RowResult:
    """Records logged, then the component SIGKILLed 50 ms later: how many never reach the Engine?"""
    result = RowResult("sigkill", "records lost to a SIGKILL 50 ms after logging")
    n = ctx.size(5_000, 500)
    with _engine() as engine:
        env = engine_env(engine.url, BENCH_N=str(n))

        def killed() -> dict[str, float]:
            engine.clear()
            main = BENCH_DIR / "components" / "killed.py"
            process = subprocess.Popen(
                [*runner_command(), "run-component", str(main), f"--component-id={COMPONENT_ID}"],
                cwd=main.parent,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            try:
                assert process.stdout is not None
                line = process.stdout.readline()
                if not line.startswith("logged "):
                    raise ComponentFailed(f"sigkill: the component did not start ({line.strip() or 'no output'})")
                time.sleep(0.05)
                os.kill(int(line.split()[1]), signal.SIGKILL)
                process.wait(timeout=60)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            return {"lost": n - _received(engine, "bench.killed"), "returncode": process.returncode}

        (runs,) = _each_run(ctx, "sigkill", (f"run-component, {n:,} records, SIGKILL", killed))
    result.lines.append(
        Line(
            "records lost",
            [float(run["lost"]) for run in runs],
            "records",
            at_most(0, "records"),
            f"{n:,} records; runner exit {sorted({int(r['returncode']) for r in runs})}",
        )
    )
    return result


def row_pinned(ctx: Context) -> RowResult:
    """The emit rows once more with the component and the runner on one CPU (``taskset -c 0``)."""
    result = RowResult("pinned", "emit cost, everything on one CPU")
    n = ctx.size(50_000, 2_000)
    pin = ["taskset", "-c", "0"]
    with _engine() as engine:
        for handler, label in (("devnull", "bench handler"), ("stdout", "cheap call")):
            env = engine_env(engine.url, BENCH_N=str(n), BENCH_MODE="plain", BENCH_HANDLER=handler)
            plain, measured = _each_run(
                ctx,
                f"pinned ({label})",
                ("plain python, taskset -c 0", lambda env=env: run_plain("emit.py", env, prefix=pin)),
                ("run-component, taskset -c 0", lambda env=env: run_component("emit.py", env, prefix=pin)),
            )
            for line in _emit_lines(plain, measured, None, "runner"):
                line.figure = f"{label}: {line.figure}"
                result.lines.append(line)
    return result


# --- 4: start-up and exit of a component that does nothing ---------------------------------------------


def row_noop(ctx: Context) -> RowResult:
    """``pass``: run-component vs the stock ``opentelemetry-instrument`` (and plain python)."""
    result = RowResult("noop", "no-op component wall")
    stock_dir = stock.ready() if ctx.smoke else stock.ensure()
    with _engine() as engine:
        env = engine_env(engine.url)
        steps: list[tuple[str, Callable[[], Run]]] = [
            ("plain python", lambda: run_plain("noop.py", env, expect_result=False)),
            ("run-component", lambda: run_component("noop.py", env, expect_result=False)),
        ]
        if stock_dir is not None:
            bin_dir = stock_dir / "bin"
            stock_env = clean_environ()
            stock_env.update(
                PATH=os.pathsep.join([str(bin_dir), stock_env.get("PATH", "")]),
                OTEL_TRACES_EXPORTER="console",
                OTEL_LOGS_EXPORTER="console",
                OTEL_METRICS_EXPORTER="none",
                PYTHONDONTWRITEBYTECODE="1",
            )
            argv = [str(bin_dir / "opentelemetry-instrument"), "python", "noop.py"]
            steps.append(("stock opentelemetry-instrument", lambda: run_command(argv, stock_env, expect_result=False)))
        outcomes = _each_run(ctx, "noop", *steps)
    plain, runner = ([r.wall for r in runs] for runs in outcomes[:2])
    walls = f"plain {med(plain) * 1e3:.0f} ms, run-component {med(runner) * 1e3:.0f} ms"
    if stock_dir is not None:
        stock_walls = [r.wall for r in outcomes[2]]
        walls += f", stock {med(stock_walls) * 1e3:.0f} ms"
        result.lines.append(Line("wall, run-component ÷ stock opentelemetry-instrument",
                                 ratios(runner, stock_walls), "x", at_most(0.5, "x"), walls))  # fmt: skip
    else:
        result.lines.append(Line("wall, run-component ÷ stock opentelemetry-instrument", [], "x", at_most(0.5, "x"),
                                 "stock venv not created (smoke skips it; run the full suite once)"))  # fmt: skip
    result.lines.append(Line("wall, run-component ÷ plain python", ratios(runner, plain), "x", None, walls))
    result.lines.append(Line("wall added by run-component", pairwise(runner, plain, lambda a, b: (a - b) * 1e3), "ms"))
    return result


# --- 4b: a component that waits ------------------------------------------------------------------------


def row_idle(ctx: Context) -> RowResult:
    """A component that sleeps: CPU of the runner and the component, less plain python's."""
    result = RowResult("idle", "an idle component's CPU")
    seconds = ctx.size(60, 2)
    with _engine() as engine:
        env = engine_env(engine.url, BENCH_SLEEP=str(seconds))
        plain, runner = _each_run(
            ctx,
            "idle",
            (f"plain python, sleeps {seconds} s", lambda: run_plain("idle.py", env, timeout=seconds + 60)),
            (f"run-component, sleeps {seconds} s", lambda: run_component("idle.py", env, timeout=seconds + 60)),
        )
    cpu_plain, cpu_runner = [r.cpu for r in plain], [r.cpu for r in runner]
    result.lines.append(
        Line(
            f"CPU of runner + component {MINUS} plain python, {seconds} s asleep",
            pairwise(cpu_runner, cpu_plain, lambda a, b: a - b),
            "s",
            at_most(0.05, "s"),
            f"plain {med(cpu_plain):.3f} s, run-component {med(cpu_runner):.3f} s (start-up and exit included)",
        )
    )
    return result


# --- 5: heavy imports -------------------------------------------------------------------------------------


def row_imports(ctx: Context) -> RowResult:
    """Time spent importing pandas, numpy, pydantic, httpx, splight_lib; and the bootstrap imports none."""
    result = RowResult("imports", "heavy imports inside the component")
    with _engine() as engine:
        env = engine_env(engine.url, BENCH_IMPORTS=HEAVY_IMPORTS)
        plain, runner = _each_run(
            ctx,
            "imports",
            ("plain python", lambda: run_plain("imports.py", env)),
            ("run-component", lambda: run_component("imports.py", env)),
        )
        progress("imports: which modules does the bootstrap load into an empty component?")
        loaded = run_component("modules.py", env).result
    p, r = [x.result["seconds"] for x in plain], [x.result["seconds"] for x in runner]
    result.lines.append(
        Line(
            "import time, runner ÷ plain",
            ratios(r, p),
            "x",
            at_most(1.05, "x"),
            f"plain {med(p) * 1e3:.0f} ms, runner {med(r) * 1e3:.0f} ms ({HEAVY_IMPORTS.replace(',', ', ')})",
        )
    )
    heavy = loaded["heavy_loaded"]
    result.lines.append(
        Line(
            "heavy modules the bootstrap imported",
            [float(len(heavy))],
            "",
            at_most(0, ""),
            (", ".join(heavy) or "none") + f"; {loaded['modules']} modules in sys.modules of an empty component",
        )
    )
    return result


# --- 6: exit latency ---------------------------------------------------------------------------------------


def row_exit(ctx: Context) -> RowResult:
    """Exit right after logging 1,000 records (Engine up): how much later does run-component return?"""
    result = RowResult("exit", "added exit latency, 1,000 records pending")
    n = ctx.size(1_000, 100)
    with _engine() as engine:
        base = engine_env(engine.url)

        def burst(count: int) -> Callable[[], Run]:
            def step() -> Run:
                engine.clear()
                run = run_component("burst.py", {**base, "BENCH_N": str(count)})
                got = _received(engine, "bench.burst")
                if got != count:
                    raise ComponentFailed(f"exit: the Engine received {got} of {count} records")
                return run

            return step

        none, some = _each_run(ctx, "exit", ("run-component, no records", burst(0)),
                               (f"run-component, {n:,} records", burst(n)))  # fmt: skip
    added = pairwise([r.wall for r in some], [r.wall for r in none], lambda a, b: (a - b) * 1e3)
    loop = [r.result["loop"] * 1e3 for r in some]
    result.lines.append(
        Line(
            f"wall({n:,} records) {MINUS} wall(none)",
            added,
            "ms",
            at_most(150, "ms"),
            f"run-component wall: none {med(r.wall for r in none) * 1e3:.0f} ms, "
            f"with records {med(r.wall for r in some) * 1e3:.0f} ms; every record delivered",
        )
    )
    result.lines.append(
        Line(
            "of which after the last record (minus the logging loop)",
            pairwise(added, loop, lambda a, b: a - b),
            "ms",
            None,
            f"the component's own loop of {n:,} calls took {med(loop):.1f} ms under the runner",
        )
    )
    return result


# --- 7: sustained delivery --------------------------------------------------------------------------------


def row_delivery(ctx: Context) -> RowResult:
    """One component logs N records flat out; records/s from its first record to the Engine having all."""
    result = RowResult("delivery", "sustained delivery to the Engine")
    n = ctx.size(200_000, 5_000)
    with _engine() as engine:
        # Big enough queues that nothing is dropped, and an exit flush long enough to deliver the
        # rest: this row measures throughput, not the drop policy.
        env = engine_env(
            engine.url,
            BENCH_N=str(n),
            OTEL_BLRP_MAX_QUEUE_SIZE=str(n + 10_000),
            OTEL_BLRP_EXPORT_TIMEOUT="600000",
        )

        def flood() -> dict[str, float]:
            engine.clear()
            offset = time.time() - time.monotonic()
            run = run_component("flood.py", env, timeout=900)
            logs = _logs_requests(engine)
            got = _received(engine, "bench.flood")
            if not logs or got == 0:
                raise ComponentFailed("delivery: the Engine received nothing")
            done = max(request.time for request in logs) + offset
            first, last = run.result["first"], run.result["last"]
            return {
                "rate": got / (done - first),
                "received": got,
                "produce": n / (last - first),
                "max_bytes": max(len(request.body) for request in logs),
                "max_records": max(request.records for request in logs),
                "posts": len(logs),
            }

        def flood_own_process() -> dict[str, float]:
            with _engine_process() as (url, recorded):
                own_env = {**env, **engine_env(url)}
                offset = time.time() - time.monotonic()
                run = run_component("flood.py", own_env, timeout=900)
                got, done = recorded.wait_for(n, "bench.flood", timeout=600)
                if got == 0:
                    raise ComponentFailed("delivery: the Engine stand-in received nothing")
                first, last = run.result["first"], run.result["last"]
                return {"rate": got / (done + offset - first), "received": got, "produce": n / (last - first)}

        runs, own = _each_run(
            ctx,
            "delivery",
            (f"run-component, {n:,} records, Engine stand-in in this process", flood),
            (f"run-component, {n:,} records, Engine stand-in in its own process", flood_own_process),
        )
    own_received = min(run["received"] for run in own)
    result.lines.append(
        Line(
            "records/s, Engine stand-in in its own process (dev-engine --record)",
            [run["rate"] for run in own],
            "rec/s",
            at_least(50_000, "rec/s"),
            f"component produced {med(r['produce'] for r in own):,.0f} rec/s; "
            f"the stand-in wrote {own_received:,}/{n:,} (worst run)",
        )
    )
    received = min(run["received"] for run in runs)
    result.lines.append(
        Line(
            "records/s, first record → Engine has all (stand-in in this process)",
            [run["rate"] for run in runs],
            "rec/s",
            at_least(50_000, "rec/s"),
            f"component produced {med(r['produce'] for r in runs):,.0f} rec/s; "
            f"Engine got {received:,}/{n:,} (worst run)",
        )
    )
    result.lines.append(
        Line(
            "largest logs/write body",
            [float(run["max_bytes"]) for run in runs],
            "B",
            at_most(MIB, "B"),
            f"≤ {max(r['max_records'] for r in runs)} records per POST, "
            f"{med(r['posts'] for r in runs):,.0f} POSTs per run",
        )
    )
    if received < n:
        result.notes.append(f"delivery: only {received:,} of {n:,} records reached the Engine in the worst run")
    return result


# --- 7b: a far Engine -----------------------------------------------------------------------------------

#: The per-call delay of the far Engine row (seconds): an Engine on another continent, or a slow one.
FAR_ENGINE_DELAY = 0.3


def far_engine_run(engine: DevEngine, n: int, concurrency: int | None, *, export_timeout_ms: int) -> dict[str, float]:
    """One component logs ``n`` records and exits at once against ``engine`` (its delay already set).

    Returns the seconds from the component's exit (its last line) to the Engine
    having every record and the final status (``all``), to the last record
    (``records``), the run-component wall, and what arrived. ``concurrency``
    None keeps ``SPLIGHT_RUNNER_EXPORT_CONCURRENCY`` unset (the default).
    """
    extra = {"BENCH_N": str(n), "OTEL_BLRP_EXPORT_TIMEOUT": str(export_timeout_ms)}
    if concurrency is not None:
        extra["SPLIGHT_RUNNER_EXPORT_CONCURRENCY"] = str(concurrency)
    engine.clear()
    offset = time.time() - time.monotonic()
    run = run_component("burst.py", engine_env(engine.url, **extra), timeout=300)
    end = run.result["end"]
    logs = _logs_requests(engine)
    statuses = [r for r in engine.requests if r.path.endswith("/update-status/") and r.accepted]
    last_record = max((r.time for r in logs), default=float("nan")) + offset
    final = [status for _, status in engine.statuses]
    last_status = max((r.time for r in statuses), default=float("nan")) + offset
    return {
        "all": max(last_record, last_status) - end,
        "records": last_record - end,
        "wall": run.wall,
        "received": _received(engine, "bench.burst"),
        "final": 1.0 if final and final[-1] == "Succeeded" else 0.0,
        "status_last": 1.0 if last_status >= last_record else 0.0,
    }


def row_far_engine(ctx: Context) -> RowResult:
    """A far Engine (300 ms a call): 30,000 records logged at exit → all records and the final status."""
    result = RowResult("far-engine", "far Engine (300 ms a call), 30,000 records logged at exit")
    n = ctx.size(30_000, 2_000)
    with _engine() as engine:
        engine.set_delay(FAR_ENGINE_DELAY)
        (runs,) = _each_run(
            ctx,
            "far-engine",
            (f"run-component, {n:,} records", lambda: far_engine_run(engine, n, None, export_timeout_ms=10_000)),
        )
    received = min(int(run["received"]) for run in runs)
    complete = [run for run in runs if run["received"] == n and run["final"] and run["status_last"]]
    result.lines.append(
        Line(
            "component exit → all records and the final status",
            [run["all"] for run in runs],
            "s",
            at_most(5, "s"),
            f"Engine got {received:,}/{n:,} records (worst run), the final status last in "
            f"{len(complete)}/{len(runs)} runs; run-component wall {med(r['wall'] for r in runs):.1f} s",
        )
    )
    if len(complete) < len(runs):
        result.notes.append("far-engine: a run lost records or the final status (see docs/performance.md)")
    return result


# --- 8: gateway --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _gateway(engine: DevEngine) -> Iterator[str]:
    """``splight-runner gateway --listen 127.0.0.1:0`` as its own process; yields its URL."""
    env = engine_env(engine.url)
    process = subprocess.Popen(
        [*runner_command(), "gateway", "--listen", "127.0.0.1:0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        marker = "listening on "
        if marker not in line:
            raise ComponentFailed(f"gateway did not start: {line.strip() or 'no output'}")
        yield line.split(marker, 1)[1].split()[0]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def row_gateway(ctx: Context) -> RowResult:
    """OTLP/HTTP protobuf in, Engine calls out: one gateway process, a client process, records/s at the Engine."""
    result = RowResult("gateway", "gateway OTLP → Engine")
    requests = ctx.size(200, 10)
    per_request = ctx.size(500, 50)
    connections = 4
    total = requests * per_request
    client = BENCH_DIR / "gateway_client.py"
    with _engine() as engine:

        def one() -> dict[str, float]:
            engine.clear()
            with _gateway(engine) as url:
                offset = time.time() - time.monotonic()
                argv = [sys.executable, str(client), url, str(requests), str(per_request), str(connections)]
                run = run_command(argv, clean_environ(), timeout=600)
            statuses = run.result["statuses"]
            if set(statuses) != {"200"}:
                raise ComponentFailed(f"gateway answered {statuses}")
            got = sum(request.records for request in _logs_requests(engine))
            if got != total:
                raise ComponentFailed(f"gateway: the Engine received {got} of {total} records")
            done = max(request.time for request in _logs_requests(engine)) + offset
            return {"rate": got / (done - run.result["start"]), "request_bytes": run.result["request_bytes"]}

        label = f"{requests} {TIMES} {per_request} records, {connections} connections"
        (runs,) = _each_run(ctx, "gateway", (label, one))
    result.lines.append(
        Line(
            "records/s counted at the Engine",
            [run["rate"] for run in runs],
            "rec/s",
            at_least(20_000, "rec/s"),
            f"{requests} requests {TIMES} {per_request} records "
            f"({runs[0]['request_bytes'] / 1024:.0f} KiB protobuf each) over {connections} keep-alive connections",
        )
    )
    return result


# --- 9: memory ---------------------------------------------------------------------------------------------


def row_memory(ctx: Context) -> RowResult:
    """VmRSS added to the component: idle, and after 1M records with the Engine down."""
    result = RowResult("memory", "resident memory added to the component")
    n = ctx.size(1_000_000, 20_000)
    with _engine() as engine:
        idle_env = engine_env(engine.url, BENCH_N="0")
        idle_plain, idle_runner = _each_run(
            ctx,
            "memory",
            ("idle, plain python", lambda: run_plain("memory.py", idle_env)),
            ("idle, run-component", lambda: run_component("memory.py", idle_env)),
        )
    down = f"http://127.0.0.1:{free_port()}"
    # A short export timeout: the exit flush and the final status give up quickly on a dead Engine.
    down_env = engine_env(down, BENCH_N=str(n), BENCH_SETTLE="1.0", OTEL_BLRP_EXPORT_TIMEOUT="1000")
    full_plain, full_runner = _each_run(
        ctx,
        "memory",
        (f"{n:,} records, plain python", lambda: run_plain("memory.py", down_env)),
        (f"{n:,} records, run-component, Engine down", lambda: run_component("memory.py", down_env)),
    )

    def mib(runs: list[Run], key: str = "VmRSS") -> list[float]:
        return [run.result[key] / 1024 for run in runs]

    result.lines.append(
        Line(
            "VmRSS added, idle",
            pairwise(mib(idle_runner), mib(idle_plain), lambda a, b: a - b),
            "MiB",
            None,
            f"plain {med(mib(idle_plain)):.1f} MiB, runner {med(mib(idle_runner)):.1f} MiB",
        )
    )
    result.lines.append(
        Line(
            f"VmRSS added, after {n:,} records, Engine down",
            pairwise(mib(full_runner), mib(full_plain), lambda a, b: a - b),
            "MiB",
            None,
            f"plain {med(mib(full_plain)):.1f} MiB, runner {med(mib(full_runner)):.1f} MiB "
            f"(peak {med(mib(full_runner, 'VmHWM')):.1f} MiB); queues bounded by OTEL_BLRP_MAX_QUEUE_SIZE",
        )
    )
    result.lines.append(
        Line(
            f"the runner's peak VmHWM, {n:,} records of ~200 B, Engine down",
            mib(full_runner, "parent_VmHWM"),
            "MiB",
            None,
            "what caps it: the runner's intake (32 MiB of frames) and the Engine queue "
            "(OTEL_BLRP_MAX_QUEUE_SIZE records and 32 MiB, estimated)",
        )
    )
    return result


#: name → (what it measures, function), in the order the suite runs them.
ROWS: dict[str, Callable[[Context], RowResult]] = {
    "emit": row_emit,
    "emit-otlp": row_emit_otlp,
    "emit-stock": row_emit_stock,
    "emit-cheap": row_emit_cheap,
    "pinned": row_pinned,
    "noop": row_noop,
    "idle": row_idle,
    "imports": row_imports,
    "exit": row_exit,
    "delivery": row_delivery,
    "far-engine": row_far_engine,
    "burst": row_burst,
    "sigkill": row_sigkill,
    "gateway": row_gateway,
    "memory": row_memory,
}

__all__ = ["COMPONENT_ID", "ROWS", "Context"]
