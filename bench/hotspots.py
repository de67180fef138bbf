"""``python -m bench.hotspots``: where start-up and per-record time goes (the profiling notes' source).

The suite (``python -m bench``) says *whether* a target is met; this says *why
not*. Two parts:

* ``--startup``: fresh processes, each step of ``run-component`` on its own
  (the supervisor's imports, the component's bootstrap imports and setup, the
  exit flush, the final-status call), plus the biggest imports under
  ``python -X importtime`` (minimum over several runs, so a busy machine
  inflates them less).
* ``--records``: in-process micro-benchmarks of each stage a record goes
  through (the caller's hook, conversion on the capture thread, the
  processor queue, translation, packing, the POST, the dev-engine's own
  ingest, the gateway's decode and plan), in µs per record of CPU, plus a
  cProfile of the capture thread's conversion.
* ``--gil``: no runner at all: what a background Python thread that works on
  each logged record costs the logging thread's own CPU
  (``bench/components/gil_probe.py``), for 0, 5, 15 and 30 µs of work per record.

These reach into private functions on purpose (``CaptureBridge._emit_record``
...) to time each stage alone; a stage whose API changed prints "n/a" instead
of stopping the report.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import logging
import os
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.harness import ACCESS_ID, COMPONENTS, SECRET_KEY, TIMES, clean_environ, engine_env, runner_command

REPEATS = 5
SUPERVISOR_IMPORTS = "import splight_runner.cli, splight_runner.supervisor.launch"


def _say(text: str = "") -> None:
    print(text, flush=True)


@contextlib.contextmanager
def _stage(name: str) -> Iterator[None]:
    """A stage that fails (API moved on) prints n/a and lets the report go on."""
    try:
        yield
    except Exception as error:
        _say(f"  {name}: n/a ({type(error).__name__}: {error})")


def _cpu_us(fn: Callable[[], int], repeats: int = REPEATS) -> float:
    """Best thread-CPU µs per unit over ``repeats``: the least disturbed run on a shared machine."""
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time()
        units = fn()
        best = min(best, (time.thread_time() - start) / max(units, 1) * 1e6)
    return best


# --- start-up ----------------------------------------------------------------------------


def _child_env(engine_url: str, state_file: str) -> dict[str, str]:
    """What the supervisor gives the component (see supervisor.child_environment)."""
    from splight_runner.supervisor.launch import BOOTSTRAP_DIR

    python_path = [BOOTSTRAP_DIR, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return engine_env(
        engine_url,
        PYTHONPATH=os.pathsep.join(python_path),
        SPLIGHT_RUNNER_ACTIVE="1",
        SPLIGHT_RUNNER_STATE_FILE=state_file,
        OTEL_LOGS_EXPORTER="splight",
        COMPONENT_ID="C1",
        PROCESS_TYPE="component",
    )


def _wall_cpu(argv: list[str], env: dict[str, str], cwd: Path, repeats: int = REPEATS) -> tuple[float, float]:
    """Median wall and median CPU (user+sys of the child) in ms over fresh processes."""
    walls, cpus = [], []
    for _ in range(repeats):
        before = os.times()
        start = time.perf_counter()
        subprocess.run(argv, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append((time.perf_counter() - start) * 1e3)
        after = os.times()
        cpus.append((after.children_user + after.children_system - before.children_user - before.children_system) * 1e3)
    return statistics.median(walls), statistics.median(cpus)


_PHASES = r"""
import atexit, json, sys, time
t0 = time.perf_counter()
from splight_runner.component.startup import start
t1 = time.perf_counter()
start()
t2 = time.perf_counter()
modules = len(sys.modules)
def _end():
    t3 = time.perf_counter()
    from splight_runner.component import lifecycle
    lifecycle._shutdown_current()
    t4 = time.perf_counter()
    print(json.dumps({"import": t1 - t0, "start": t2 - t1, "shutdown": t4 - t3, "modules": modules}), flush=True)
atexit.register(_end)
"""


def startup(engine_url: str) -> None:
    python = sys.executable
    tmp = Path(tempfile.mkdtemp(prefix="bench-hotspots-"))
    state = str(tmp / "state")
    plain_env = clean_environ()
    _say(f"start-up, median of {REPEATS} fresh processes (wall ms / CPU ms):")
    rows: list[tuple[str, list[str], dict[str, str]]] = [
        ("python -c pass", [python, "-c", "pass"], plain_env),
        (
            "supervisor imports (cli, supervisor)",
            [python, "-c", SUPERVISOR_IMPORTS],
            plain_env,
        ),
        (
            "+ final-status imports (engine_client, retry)",
            [python, "-c", f"{SUPERVISOR_IMPORTS}, splight_runner.engine.client, splight_runner.engine.retry"],
            plain_env,
        ),
        ("splight-runner version", [*runner_command(), "version"], plain_env),
        ("component alone with the bootstrap (noop)", [python, "noop.py"], _child_env(engine_url, state)),
        (
            "run-component noop (all of it)",
            [*runner_command(), "run-component", "noop.py", "--component-id=C1"],
            engine_env(engine_url),
        ),
        (
            "run-component noop, OTEL_LOGS_EXPORTER=none",
            [*runner_command(), "run-component", "noop.py", "--component-id=C1"],
            engine_env(engine_url, OTEL_LOGS_EXPORTER="none"),
        ),
    ]
    for label, argv, env in rows:
        with _stage(label):
            wall, cpu = _wall_cpu(argv, env, COMPONENTS)
            _say(f"  {label:48s} {wall:7.0f} / {cpu:5.0f}")

    with _stage("bootstrap phases"):
        script = tmp / "phases.py"
        script.write_text(_PHASES, encoding="utf-8")
        env = _child_env(engine_url, state)
        env.pop("SPLIGHT_RUNNER_ACTIVE")  # the script calls start() itself, timed
        env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
        samples = []
        for _ in range(REPEATS):
            done = subprocess.run([python, str(script)], env=env, capture_output=True, text=True, check=True)
            samples.append(json.loads(done.stdout.strip().splitlines()[-1]))
        _say("  inside the component (median ms):")
        for key, label in (
            ("import", "import splight_runner.component.startup"),
            ("start", "start(): distro, SDK configuration, instrumentors"),
            ("shutdown", "exit flush (Pipeline.shutdown), nothing logged"),
        ):
            _say(f"    {label:52s} {statistics.median(s[key] for s in samples) * 1e3:7.1f}")
        _say(f"    modules in sys.modules after start(): {samples[0]['modules']}")

    with _stage("final status call"):
        from splight_runner.engine.client import EngineClient
        from splight_runner.settings import EngineSettings

        settings = EngineSettings(engine_url, "v3", ACCESS_ID, SECRET_KEY)
        walls = []
        for _ in range(REPEATS):
            client = EngineClient(settings, timeout=10)
            start = time.perf_counter()
            client.update_status("C1", "Succeeded")
            walls.append((time.perf_counter() - start) * 1e3)
            client.close()
        _say(f"  final status POST to the dev-engine (new connection, as the supervisor): "
             f"{statistics.median(walls):.1f} ms median")  # fmt: skip

    with _stage("importtime"):
        _importtime(_child_env(engine_url, state))


def _importtime(env: dict[str, str], runs: int = 3, top: int = 18) -> None:
    """Biggest cumulative imports of the component's bootstrap, min over ``runs`` (µs → ms)."""
    best: dict[str, int] = {}
    order: list[str] = []
    pattern = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "noop.py"], env=env, cwd=COMPONENTS, capture_output=True, text=True
        )
        for line in done.stderr.splitlines():
            match = pattern.match(line)
            if match is None:
                continue
            name, cumulative, depth = match[4], int(match[2]), len(match[3]) // 2
            if name not in best:
                order.append(name)
            best[name] = min(best.get(name, cumulative), cumulative)
            best[f"{name}@depth"] = depth
    _say(f"  python -X importtime, component with the bootstrap, min of {runs} (cumulative ms, first importer pays):")
    wanted = [name for name in order if best[f"{name}@depth"] <= 4 and not name.endswith("@depth")]
    for name in sorted(wanted, key=lambda n: -best[n])[:top]:
        _say(f"    {best[name] / 1000:7.1f}  {'  ' * best[f'{name}@depth']}{name}")


def _parked_bridge(capture: Any, provider: Any, limit: int) -> Any:
    """A CaptureBridge whose thread never drains on its own (this script drains it, timed).

    Follows the constructor as it evolves: an eager ``provider`` or a lazy
    ``provider_source``, with or without a shared drop counter.
    """
    import inspect

    from splight_runner.pipeline.accounting import DropCounter

    parameters = inspect.signature(capture.CaptureBridge).parameters
    kwargs: dict[str, Any] = {"max_queue_size": limit, "wake_at": limit, "schedule_delay": 3600.0}
    if "drops" in parameters:
        kwargs["drops"] = DropCounter()
    if "report_drops" in parameters:
        kwargs["report_drops"] = False
    source = (lambda: provider) if "provider_source" in parameters else provider
    bridge = capture.CaptureBridge(source, **kwargs)
    for name in ("prepare", "_ready"):  # builds the SDK side now, so the timing below excludes it
        if hasattr(bridge, name):
            getattr(bridge, name)()
            break
    return bridge


# --- per record --------------------------------------------------------------------------


def records(engine_url: str, n: int) -> None:
    from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    from splight_runner.component import capture
    from splight_runner.engine import records as translation
    from splight_runner.engine.client import EngineClient, pack_records
    from splight_runner.pipeline.exporter import SplightLogExporter
    from splight_runner.pipeline.processor import SplightLogRecordProcessor
    from splight_runner.settings import EngineSettings

    settings = EngineSettings(engine_url, "v3", ACCESS_ID, SECRET_KEY)
    _say(f"per record, in-process, best of {REPEATS} (µs of CPU per record, N={n:,}):")

    class Collect(LogRecordProcessor):
        def __init__(self) -> None:
            self.items: list[Any] = []

        def on_emit(self, log_record: Any) -> None:  # type: ignore[override]
            self.items.append(log_record)

        def shutdown(self) -> None:
            pass

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    resource = Resource.create(
        {"splight.component.id": "C1", "splight.process.type": "component", "service.name": "bench"}
    )
    provider = LoggerProvider(resource=resource)
    collect = Collect()
    provider.add_log_record_processor(collect)
    logger = logging.getLogger("bench.hotspots")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(logging.StreamHandler(open(os.devnull, "w")))  # noqa: SIM115
    bridge = _parked_bridge(capture, provider, 10 * n)
    original = logging.Logger.callHandlers

    def log_n() -> int:
        for i in range(n):
            logger.info("record %d of %d", i, n, extra={"tags": "RUNTIME"})
        return n

    items: list[Any] = []
    hook = None

    def log_hooked() -> int:
        bridge._items.clear()
        log_n()
        items[:] = list(bridge._items)
        bridge._items.clear()
        return n

    # Alternate without and with the hook, best of each: the machine's drift hits both alike.
    plain_us = hooked_us = float("inf")
    for _ in range(REPEATS):
        logging.Logger.callHandlers = original  # type: ignore[method-assign]
        plain_us = min(plain_us, _cpu_us(log_n, repeats=1))
        if hook is None:
            capture.install(bridge)
            hook = logging.Logger.callHandlers
        logging.Logger.callHandlers = hook  # type: ignore[method-assign]
        hooked_us = min(hooked_us, _cpu_us(log_hooked, repeats=1))
    logging.Logger.callHandlers = original  # type: ignore[method-assign]
    bridge.stop()
    _say(f"  caller: logger.info to a devnull StreamHandler            {plain_us:7.2f}")
    _say(f"  caller: the same with the capture hook                    {hooked_us:7.2f}  (+{hooked_us - plain_us:.2f})")
    total = hooked_us - plain_us

    def emit_all() -> int:
        collect.items.clear()
        for item in items:
            bridge._emit_record(*item)
        return len(items)

    with _stage("capture thread: _emit_record"):
        us = _cpu_us(emit_all)
        total += us
        _say(f"  capture thread: CaptureBridge._emit_record (→ SDK record) {us:7.2f}")
        profile = cProfile.Profile()
        profile.enable()
        emit_all()
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(8)
        _say("    cProfile of it, by own time:")
        for line in out.getvalue().splitlines():
            if re.match(r"\s+\d", line):
                _say("      " + line.strip())
    readable = list(collect.items)

    with _stage("processor.on_emit"):
        exporter = SplightLogExporter(engine=settings, process_id="C1", sender_type="component", state_file="")
        processor = SplightLogRecordProcessor(
            exporter, max_queue_size=10 * n, schedule_delay_millis=3_600_000, max_export_batch_size=10 * n
        )

        def enqueue() -> int:
            processor._queue.clear()
            for record in readable:
                processor.on_emit(record)
            return len(readable)

        us = _cpu_us(enqueue)
        processor._queue.clear()
        total += us
        _say(f"  SplightLogRecordProcessor.on_emit                         {us:7.2f}")

    translated: list[Any] = []

    def translate() -> int:
        translated[:] = [translation.from_sdk(r, "C1", "component")[1] for r in readable]
        return len(readable)

    with _stage("translation"):
        us = _cpu_us(translate)
        total += us
        _say(f"  export thread: translation.from_sdk                       {us:7.2f}")
    bodies: list[tuple[bytes, int]] = []

    def pack() -> int:
        bodies[:] = pack_records(translated)
        return len(translated)

    with _stage("pack_records"):
        us = _cpu_us(pack)
        total += us
        size = sum(len(body) for body, _ in bodies) / max(1, len(translated))
        _say(f"  export thread: pack_records (json per record)             {us:7.2f}  ({size:.0f} B/record)")

    with _stage("POST"):
        client = EngineClient(settings, timeout=30)

        def post() -> int:
            for body, _ in bodies:
                client.write_logs(body)
            return len(translated)

        wall0 = time.perf_counter()
        us = _cpu_us(post, repeats=2)
        wall = (time.perf_counter() - wall0) / 2 / len(bodies) * 1e3
        total += us
        _say(f"  export thread: EngineClient.write_logs, client side       {us:7.2f}  ({wall:.1f} ms wall per POST "
             "of 1000, dev-engine in another process)")  # fmt: skip
    _say(f"  = CPU the runner spends per record inside the component    {total:7.2f}  "
         f"(the component's own call: {plain_us:.2f})")  # fmt: skip

    with _stage("SplightLogExporter.deliver"):

        def deliver() -> int:
            for start in range(0, len(readable), 1000):
                exporter.deliver(readable[start : start + 1000], lambda: None)
            return len(readable)

        us = _cpu_us(deliver, repeats=2)
        _say(f"  check: SplightLogExporter.deliver (translate+pack+POST)   {us:7.2f}")

    with _stage("dev-engine ingest"):
        from splight_runner.dev_engine import server as dev_engine

        body = bodies[0][0]
        engine = dev_engine.DevEngine(out=None)
        count = bodies[0][1]

        def ingest() -> int:
            payload = json.loads(body)
            engine._accept_records(dev_engine.validate_logs_payload(payload))
            return count

        us = _cpu_us(ingest)
        _say(f"  dev-engine: json.loads + validate + store (server side)   {us:7.2f}")

    with _stage("gateway decode + plan"):
        _gateway(n)


def _gateway(n: int) -> None:
    from splight_runner.engine.client import pack_records
    from splight_runner.gateway.otlp_http import decode_request
    from splight_runner.gateway.plan import plan_request

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from gateway_client import build_body

    body = build_body(0, 500, time.time_ns())

    def decode() -> int:
        for _ in range(n // 500):
            decode_request(body, "application/x-protobuf")
        return n // 500 * 500

    request = decode_request(body, "application/x-protobuf")

    def plan() -> int:
        for _ in range(n // 500):
            plan_request(request)
        return n // 500 * 500

    records = next(step for step in plan_request(request).steps if hasattr(step, "records")).records

    def pack() -> int:
        for _ in range(n // 500):
            pack_records(records)
        return n // 500 * 500

    _say(f"  gateway: decode_request (protobuf)                        {_cpu_us(decode):7.2f}")
    _say(f"  gateway: plan_request (translation)                       {_cpu_us(plan):7.2f}")
    _say(f"  gateway: pack_records                                     {_cpu_us(pack):7.2f}")


@contextlib.contextmanager
def _engine_process() -> Iterator[str]:
    """A dev-engine in its own process, so its work does not share this process's GIL."""
    code = (
        "import sys, time\n"
        "from splight_runner.dev_engine.server import DevEngine\n"
        "engine = DevEngine(out=None).start()\n"
        "print(engine.url, flush=True)\n"
        "sys.stdin.read()\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=clean_environ()
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=10)


# --- a busy background thread, without the runner ----------------------------------------


def gil() -> None:
    """The logging thread's CPU per call while a background thread works on each record."""
    _say("\nThe logging thread's CPU per call (thread_time, median of alternating phases, no runner):")
    done = subprocess.run(
        [sys.executable, str(COMPONENTS / "gil_probe.py")],
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    for work, phases in json.loads(done.stdout).items():
        parked, working = phases["parked"], phases["working"]
        label = "only drains the deque" if float(work) == 0 else f"{float(work):g} µs of Python per record"
        _say(
            f"  background thread {label:<28} parked {parked:6.2f}  working {working:6.2f}"
            f"  ({TIMES}{working / parked:.2f}, {working - parked:+.2f} µs/call)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hotspots", description=__doc__.split("\n\n")[0])
    parser.add_argument("--startup", action="store_true", help="only the start-up part")
    parser.add_argument("--records", action="store_true", help="only the per-record part")
    parser.add_argument("--gil", action="store_true", help="only the background-thread probe (no runner)")
    parser.add_argument("-n", type=int, default=20_000, help="records for the per-record part (default 20000)")
    ns = parser.parse_args(argv)
    both = not (ns.startup or ns.records or ns.gil)
    if ns.gil or both:
        gil()
    if not (ns.startup or ns.records or both):
        return 0
    with _engine_process() as url:
        if ns.startup or both:
            startup(url)
        if ns.records or both:
            records(url, ns.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
