"""``python -m bench.hotspots``: where start-up and per-record time goes (the profiling notes' source).

The suite (``python -m bench``) says *whether* a target is met; this says *why
not*. Three parts:

* ``--startup``: fresh processes, each step of ``run-component`` on its own
  (the supervisor's imports and its pipeline thread's, the component's
  bootstrap imports and capture set-up, the exit hand-over to the channel, the
  final-status call), plus the biggest imports under ``python -X importtime``
  (minimum over several runs, so a busy machine inflates them less). The
  component gets the environment the supervisor gives it, with
  ``SPLIGHT_RUNNER_CHANNEL`` naming a Unix socket this script listens on and
  drains.
* ``--records``: in-process micro-benchmarks of each stage a record goes
  through, in µs per record of CPU, in the two processes it crosses. In the
  component: the capture hook on the caller's thread (into a sink that drops
  each batch of 256), then ``wire.encode`` of the 256-record batch and its
  send on a socketpair. In the supervisor: ``wire.decode`` of the frame,
  ``EngineEmitter.emit`` (→ Engine record, the direct path), ``pack_records``,
  the POST; then the SDK path's stages instead of the direct emitter
  (``FlatEmitter.emit`` → SDK record on a real ``LoggerProvider``, the Splight
  processor's ``on_emit``); then the dev-engine's own ingest and the gateway's decode and plan. A check
  row runs the hook into a real ``Channel``; a cProfile of the heaviest stage
  closes it.
* ``--gil``: no runner at all: what a background Python thread that works on
  each logged record costs the logging thread's own CPU
  (``bench/components/gil_probe.py``), for 0, 5, 15 and 30 µs of work per record.

These reach into private parts on purpose (the processor's queue, the dev
engine's ``_accept_records``, ``lifecycle._shutdown_current`` ...) to time each
stage alone; a stage whose API changed prints "n/a" instead of stopping the
report.
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
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.harness import ACCESS_ID, COMPONENTS, SECRET_KEY, TIMES, clean_environ, engine_env, runner_command

REPEATS = 5
#: What the supervisor's main thread imports for ``run-component``.
SUPERVISOR_IMPORTS = "import splight_runner.cli, splight_runner.supervisor.launch, splight_runner.supervisor.host"
#: What its pipeline thread imports while the component starts (``supervisor.launch.build_pipeline``),
#: with the Engine the only destination (the direct path: no OpenTelemetry).
PIPELINE_IMPORTS = (
    "import splight_runner.pipeline.logs, splight_runner.pipeline.flat, splight_runner.pipeline.dispatch, "
    "splight_runner.pipeline.delivery, splight_runner.pipeline.resource"
)


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


def _row(label: str, us: float, note: str = "") -> None:
    """One per-record line: label, µs per record in one column, then a note."""
    _say(f"    {label:<57}{us:7.2f}" + (f"  {note}" if note else ""))


def _drain(sock: socket.socket) -> Callable[[], int]:
    """Read ``sock`` to end-of-file in a daemon thread; the returned function joins it, giving the bytes read."""
    received = [0]

    def run() -> None:
        with contextlib.suppress(OSError):
            while data := sock.recv(1 << 20):
                received[0] += len(data)

    thread = threading.Thread(target=run, name="bench-drain", daemon=True)
    thread.start()

    def join() -> int:
        thread.join(10)
        return received[0]

    return join


@contextlib.contextmanager
def _listening_channel() -> Iterator[str]:
    """A Unix socket in a temp folder, as the supervisor's ``PipelineHost`` opens; a thread reads and discards.

    Yields the path to give as ``SPLIGHT_RUNNER_CHANNEL``.
    """
    with tempfile.TemporaryDirectory(prefix="bench-hotspots-") as folder:
        path = os.path.join(folder, "channel")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(64)
        listener.setblocking(False)
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ)
        stop = threading.Event()

        def read_loop() -> None:
            while not stop.is_set():
                for key, _ in selector.select(0.05):
                    sock: Any = key.fileobj
                    if sock is listener:
                        with contextlib.suppress(OSError):
                            connection, _ = listener.accept()
                            connection.setblocking(False)
                            selector.register(connection, selectors.EVENT_READ)
                        continue
                    try:
                        data = sock.recv(1 << 20)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        selector.unregister(sock)
                        sock.close()

        thread = threading.Thread(target=read_loop, name="bench-channel", daemon=True)
        thread.start()
        try:
            yield path
        finally:
            stop.set()
            thread.join(5)
            for key in list(selector.get_map().values()):
                with contextlib.suppress(OSError):
                    key.fileobj.close()  # type: ignore[union-attr]
            selector.close()


# --- start-up ----------------------------------------------------------------------------


def _child_env(engine_url: str, channel: str) -> dict[str, str]:
    """What the supervisor gives the component (see supervisor.launch.child_environment)."""
    from splight_runner.supervisor.launch import BOOTSTRAP_DIR

    python_path = [BOOTSTRAP_DIR, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return engine_env(
        engine_url,
        PYTHONPATH=os.pathsep.join(python_path),
        SPLIGHT_RUNNER_ACTIVE="1",
        SPLIGHT_RUNNER_CHANNEL=channel,
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
from splight_runner.bootstrap.splight_capture.startup import start
t1 = time.perf_counter()
start()
t2 = time.perf_counter()
modules = len(sys.modules)
otel = sum(1 for name in sys.modules if name.startswith("opentelemetry"))
def _end():
    t3 = time.perf_counter()
    from splight_runner.bootstrap.splight_capture import lifecycle
    lifecycle._shutdown_current()
    t4 = time.perf_counter()
    print(json.dumps({"import": t1 - t0, "start": t2 - t1, "shutdown": t4 - t3, "modules": modules, "otel": otel}),
          flush=True)
atexit.register(_end)
"""


def startup(engine_url: str) -> None:
    with _listening_channel() as channel, tempfile.TemporaryDirectory(prefix="bench-hotspots-") as folder:
        _startup(engine_url, channel, Path(folder))


def _startup(engine_url: str, channel: str, tmp: Path) -> None:
    python = sys.executable
    plain_env = clean_environ()
    _say(f"start-up, median of {REPEATS} fresh processes (wall ms / CPU ms):")
    rows: list[tuple[str, list[str], dict[str, str]]] = [
        ("python -c pass", [python, "-c", "pass"], plain_env),
        ("supervisor imports (cli, launch, host)", [python, "-c", SUPERVISOR_IMPORTS], plain_env),
        (
            "+ its pipeline thread's imports (direct path)",
            [python, "-c", f"{SUPERVISOR_IMPORTS}; {PIPELINE_IMPORTS}"],
            plain_env,
        ),
        ("splight-runner version", [*runner_command(), "version"], plain_env),
        ("component alone with the bootstrap (noop)", [python, "noop.py"], _child_env(engine_url, channel)),
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
        env = _child_env(engine_url, channel)
        env.pop("SPLIGHT_RUNNER_ACTIVE")  # the script calls start() itself, timed
        env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
        samples = []
        for _ in range(REPEATS):
            done = subprocess.run([python, str(script)], env=env, capture_output=True, text=True, check=True)
            samples.append(json.loads(done.stdout.strip().splitlines()[-1]))
        _say("  inside the component (median ms):")
        for key, label in (
            ("import", "import splight_runner.bootstrap.splight_capture.startup"),
            ("start", "start(): distro defaults, capture into the channel"),
            ("shutdown", "exit hand-over (Channel.close), nothing logged"),
        ):
            _say(f"    {label:52s} {statistics.median(s[key] for s in samples) * 1e3:7.1f}")
        _say(
            f"    modules in sys.modules after start(): {samples[0]['modules']} "
            f"({samples[0]['otel']} of them opentelemetry)"
        )

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
        _say(f"  final status POST to the dev-engine (new connection, as the supervisor after a silent component): "
             f"{statistics.median(walls):.1f} ms median")  # fmt: skip

    with _stage("importtime"):
        _importtime(_child_env(engine_url, channel))


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


# --- per record --------------------------------------------------------------------------


class _DroppingSink:
    """A capture sink as ``capture.install`` wants one; ``full()`` drops the batch (the hook's cost alone)."""

    def __init__(self, threshold: int) -> None:
        self.items: deque[tuple[Any, ...]] = deque()
        self.threshold = threshold
        self.pid = os.getpid()

    def full(self) -> None:
        self.items.clear()


@contextlib.contextmanager
def _hooks_restored() -> Iterator[None]:
    """``capture.install`` patches ``Logger.callHandlers`` and both excepthooks: put them back."""
    saved = (logging.Logger.callHandlers, sys.excepthook, threading.excepthook)
    try:
        yield
    finally:
        logging.Logger.callHandlers, sys.excepthook, threading.excepthook = saved  # type: ignore[method-assign]


def _profile(label: str, fn: Callable[[], int]) -> None:
    profile = cProfile.Profile()
    profile.enable()
    fn()
    profile.disable()
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(8)
    _say(f"  cProfile of the heaviest stage, {label.strip()}, by own time:")
    for line in out.getvalue().splitlines():
        if re.match(r"\s+\d", line):
            _say("      " + line.strip())


def records(engine_url: str, n: int) -> None:
    from splight_runner.bootstrap.splight_capture import capture, wire
    from splight_runner.bootstrap.splight_capture.channel import BATCH

    _say(f"per record, in-process, best of {REPEATS} (µs of CPU per record, N={n:,}):")
    #: (label, µs, the function timed): the heaviest gets a cProfile at the end.
    stages: list[tuple[str, float, Callable[[], int]]] = []

    # --- the component's process: the caller's thread -------------------------------------
    logger = logging.getLogger("bench.hotspots")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(logging.StreamHandler(open(os.devnull, "w")))  # noqa: SIM115
    otel_loaded = "opentelemetry.context" in sys.modules

    def log_n() -> int:
        for i in range(n):
            logger.info("record %d of %d", i, n, extra={"tags": "RUNTIME"})
        return n

    sink = _DroppingSink(BATCH)
    with _hooks_restored():
        original = logging.Logger.callHandlers
        capture.install(sink)
        hook = logging.Logger.callHandlers
        # Alternate without and with the hook, best of each: the machine's drift hits both alike.
        plain_us = hooked_us = float("inf")
        for _ in range(REPEATS):
            logging.Logger.callHandlers = original  # type: ignore[method-assign]
            plain_us = min(plain_us, _cpu_us(log_n, repeats=1))
            logging.Logger.callHandlers = hook  # type: ignore[method-assign]
            hooked_us = min(hooked_us, _cpu_us(log_n, repeats=1))
        # Once more, untimed, keeping every flat record for the stages below.
        sink.threshold = n + 1
        sink.items.clear()
        log_n()
        items = list(sink.items)
        sink.items.clear()
    context = "OTel context loaded" if otel_loaded else "no OTel loaded, as in a component without spans"
    _say("  component, caller's thread:")
    _row("logger.info to a devnull StreamHandler", plain_us)
    _row("the same with the capture hook (flattener, deque)", hooked_us, f"(+{hooked_us - plain_us:.2f}; {context})")

    def log_hooked() -> int:
        with _hooks_restored():
            logging.Logger.callHandlers = hook  # type: ignore[method-assign]
            sink.threshold = BATCH
            log_n()
            sink.items.clear()
        return n

    stages.append(("caller: logger.info with the capture hook", hooked_us - plain_us, log_hooked))
    component = hooked_us - plain_us

    batches = [items[start : start + BATCH] for start in range(0, len(items), BATCH)]
    frames: list[bytes] = []

    def dumps() -> int:
        frames[:] = [wire.encode(batch) for batch in batches]
        return len(items)

    with _stage("wire.encode"):
        us = _cpu_us(dumps)
        size = sum(len(frame) for frame in frames) / max(1, len(items))
        _row(f"wire.encode (pickle 4), batches of {BATCH}", us, f"({size:.0f} B/record)")
        stages.append(("component: wire.encode of the batches", us, dumps))

    with _stage("socketpair send"):
        sender, receiver = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        received = _drain(receiver)

        def send() -> int:
            for batch in batches:
                data = wire.encode(batch)
                sender.sendall(wire.frame_header(len(data)) + data)
            return len(items)

        try:
            us = _cpu_us(send)
        finally:
            sender.close()
            received()
            receiver.close()
        component += us
        _row("wire.encode + framed send on a socketpair", us)
        stages.append(("component: wire.encode + socketpair send", us, send))
    _row("= CPU the runner adds per record in the component", component, f"(the component's own call: {plain_us:.2f})")

    with _stage("check: real Channel"):
        from splight_runner.bootstrap.splight_capture.channel import Channel

        with _listening_channel() as path, _hooks_restored():
            channel = Channel(path)
            capture.install(channel)
            try:
                us = _cpu_us(log_n)
            finally:
                logging.Logger.callHandlers = original  # type: ignore[method-assign]
                channel.close(timeout=2.0)
        note = f"(+{us - plain_us:.2f}; its timer thread writes partial batches)"
        _row("check: logger.info, hook into a real Channel", us, note)

    _supervisor(engine_url, n, frames, stages)

    with _stage("gateway decode + plan"):
        _gateway(n)

    label, _, fn = max(stages, key=lambda stage: stage[1])
    with _stage("cProfile"):
        _profile(label, fn)


def _supervisor(
    engine_url: str, n: int, frames: list[bytes], stages: list[tuple[str, float, Callable[[], int]]]
) -> None:
    from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    from splight_runner.bootstrap.splight_capture import wire
    from splight_runner.engine.client import MAX_RECORDS_PER_POST, EngineClient, pack_records
    from splight_runner.pipeline.exporter import SplightLogExporter
    from splight_runner.pipeline.flat import FlatEmitter
    from splight_runner.pipeline.processor import SplightLogRecordProcessor
    from splight_runner.pipeline.resource import resource_attributes
    from splight_runner.settings import EngineSettings

    settings = EngineSettings(engine_url, "v3", ACCESS_ID, SECRET_KEY)
    _say("  supervisor:")
    total = 0.0
    items: list[Any] = []

    def loads() -> int:
        items[:] = [item for frame in frames for item in wire.decode(frame)]
        return len(items)

    with _stage("wire.decode"):
        us = _cpu_us(loads)
        total += us
        _row("reader: wire.decode of the frames (restricted unpickler)", us)
        stages.append(("supervisor: wire.decode", us, loads))

    from splight_runner.pipeline.delivery import EngineDelivery
    from splight_runner.pipeline.flat import EngineEmitter

    class Collect:
        """Only queues, as the Engine queue's put does (its dispatcher and senders are timed apart below)."""

        def __init__(self) -> None:
            self.items: list[Any] = []
            self.delivery = EngineDelivery(engine=settings, process_id="C1", sender_type="component", timeout=30)

        def put(self, item: Any) -> None:
            self.items.append(item)

    collect = Collect()
    direct = EngineEmitter(collect, process_id="C1", sender_type="component")
    translated: list[Any] = []

    def emit_direct() -> int:
        collect.items.clear()
        for item in items:
            direct.emit(item)
        translated[:] = collect.items
        return len(items)

    with _stage("EngineEmitter.emit"):
        us = _cpu_us(emit_direct)
        total += us
        _row("feeder: EngineEmitter.emit (→ Engine record; the direct path)", us)
        stages.append(("supervisor feeder: EngineEmitter.emit", us, emit_direct))
    bodies: list[tuple[bytes, int]] = []

    def pack() -> int:
        # As the sender packs: one batch of at most a POST's records at a time.
        step = MAX_RECORDS_PER_POST
        bodies[:] = [body for i in range(0, len(translated), step) for body in pack_records(translated[i : i + step])]
        return len(translated)

    with _stage("pack_records"):
        us = _cpu_us(pack)
        total += us
        size = sum(len(body) for body, _ in bodies) / max(1, len(translated))
        _row("sender: pack_records (the body of each POST)", us, f"({size:.0f} B/record)")
        stages.append(("supervisor sender: pack_records", us, pack))

    with _stage("POST"):
        client = EngineClient(settings, timeout=30)

        def post() -> int:
            for body, _ in bodies:
                client.write_logs(body)
            return len(translated)

        wall0 = time.perf_counter()
        us = _cpu_us(post, repeats=2)
        wall = (time.perf_counter() - wall0) / 2 / len(bodies) * 1e3
        client.close()
        total += us
        note = f"({wall:.1f} ms wall per POST of 1000, dev-engine in another process)"
        _row("sender: EngineClient.write_logs, client side", us, note)
    _row("= CPU the runner spends per record (Engine the only destination)", total)

    _say("  the SDK path (an OpenTelemetry exporter configured too), instead of EngineEmitter.emit:")

    class Queue(LogRecordProcessor):
        """Only queues, as a processor's on_emit is called (the Splight processor's is timed apart below)."""

        def __init__(self) -> None:
            self.items: list[Any] = []

        def on_emit(self, log_record: Any) -> None:  # type: ignore[override]
            self.items.append(log_record)

        def shutdown(self) -> None:
            pass

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    provider = LoggerProvider(resource=Resource.create(resource_attributes("C1", "component")), shutdown_on_exit=False)
    queue = Queue()
    provider.add_log_record_processor(queue)
    emitter = FlatEmitter(provider)

    def emit_all() -> int:
        queue.items.clear()
        for item in items:
            emitter.emit(item)
        return len(items)

    with _stage("FlatEmitter.emit"):
        us = _cpu_us(emit_all)
        _row("feeder: FlatEmitter.emit (→ SDK record, Logger.emit)", us)
        stages.append(("supervisor feeder (SDK path): FlatEmitter.emit", us, emit_all))
    readable = list(queue.items)

    exporter = SplightLogExporter(engine=settings, process_id="C1", sender_type="component", timeout=30)
    with _stage("processor.on_emit"):
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
        _row("feeder: SplightLogRecordProcessor.on_emit (from_sdk, queued)", us)
        stages.append(("supervisor feeder (SDK path): SplightLogRecordProcessor.on_emit", us, enqueue))

    with _stage("EngineDelivery.deliver"):

        def deliver() -> int:
            for start in range(0, len(translated), 1000):
                exporter.deliver(translated[start : start + 1000], lambda: None)
            return len(translated)

        us = _cpu_us(deliver, repeats=2)
        _row("check: EngineDelivery.deliver (pack+POST)", us)
    exporter.shutdown()

    _say("  other sides:")
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
        _row("dev-engine: json.loads + validate + store (server side)", us)


def _gateway(n: int) -> None:
    from splight_runner.engine.client import pack_records
    from splight_runner.gateway.otlp_http import decode_request
    from splight_runner.gateway.plan import plan_request

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from gateway_client import build_body

    body = build_body(0, 500, time.time_ns())

    def decode() -> int:
        for _ in range(n // 500):
            decode_request(body, "application/x-protobuf", 1 << 30)
        return n // 500 * 500

    request = decode_request(body, "application/x-protobuf", 1 << 30)

    def plan() -> int:
        translated = 0
        for _ in range(n // 500):  # the plan translates lazily: its steps are the work
            translated += sum(len(step.records) for step in plan_request(request).steps() if hasattr(step, "records"))
        return translated

    records = next(step for step in plan_request(request).steps() if hasattr(step, "records")).records

    def pack() -> int:
        for _ in range(n // 500):
            pack_records(records)
        return n // 500 * 500

    _row("gateway: decode_request (protobuf)", _cpu_us(decode))
    _row("gateway: plan_request (translation)", _cpu_us(plan))
    _row("gateway: pack_records", _cpu_us(pack))


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
