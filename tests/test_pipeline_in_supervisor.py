"""The component captures, the supervisor ships: what that design guarantees at the edges of a life.

Each test runs a real component under the real runner against a real dev-engine
(or a hand-made misbehaving server) and asserts what reached the Engine.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from tests.support import RUNNER, engine_env, run_component, start_component, wait_for_line, write_component

from splight_runner.dev_engine.server import DevEngine

pytestmark = pytest.mark.component_facing


def _messages(engine: DevEngine) -> Counter[str]:
    return Counter(record["message"] for record in engine.records)


def test_records_logged_just_before_a_sigkill_all_arrive_and_the_end_is_failed(dev_engine, tmp_path):
    main = write_component(
        tmp_path,
        """
        import logging, sys, time
        log = logging.getLogger("app")
        log.setLevel(logging.INFO)
        for i in range(1234):
            log.info("record %d", i)
        print("logged", flush=True)
        time.sleep(60)
        """,
    )
    env = engine_env(dev_engine, OTEL_BLRP_SCHEDULE_DELAY="60000")
    proc = start_component(main, env)
    wait_for_line(proc.stdout, "logged")
    time.sleep(0.2)
    component = _only_child(proc.pid)
    os.kill(component, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == 128 + signal.SIGKILL
    counts = _messages(dev_engine)
    assert [counts[f"record {i}"] for i in range(1234)] == [1] * 1234
    assert dev_engine.statuses[-1] == ("C1", "Failed")


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_every_pool_worker_record_arrives_exactly_once(dev_engine, tmp_path, method):
    main = write_component(
        tmp_path,
        f"""
        import logging, multiprocessing
        def task(i):
            log = logging.getLogger("worker")
            log.setLevel(logging.INFO)
            log.info("task %d", i)
            return i
        if __name__ == "__main__":
            multiprocessing.set_start_method({method!r})
            for round in range(2):
                with multiprocessing.Pool(4) as pool:
                    assert sorted(pool.map(task, range(round * 400, round * 400 + 400))) == list(
                        range(round * 400, round * 400 + 400)
                    )
        """,
    )
    run = run_component(main, engine_env(dev_engine), timeout=120)
    assert run.returncode == 0, run.stderr
    counts = _messages(dev_engine)
    assert [counts[f"task {i}"] for i in range(800)] == [1] * 800
    assert dev_engine.statuses[-1] == ("C1", "Succeeded")


def test_sigterm_to_the_runner_during_the_last_flush_loses_nothing(dev_engine, tmp_path):
    main = write_component(
        tmp_path,
        """
        import logging
        log = logging.getLogger("app")
        log.setLevel(logging.INFO)
        for i in range(2000):
            log.info("record %d", i)
        print("done", flush=True)
        """,
    )
    dev_engine.set_delay(0.3)  # every POST takes a while: the flush is still running when SIGTERM lands
    env = engine_env(dev_engine, OTEL_BLRP_MAX_EXPORT_BATCH_SIZE="200")
    proc = start_component(main, env)
    wait_for_line(proc.stdout, "done")
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    counts = _messages(dev_engine)
    assert [counts[f"record {i}"] for i in range(2000)] == [1] * 2000


class _Dripping:
    """A server that answers one byte every ``interval`` seconds, forever (until stopped)."""

    def __init__(self, interval: float) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.interval = interval
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 201 Created\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000000:
                if self.stopped.wait(self.interval):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()


@pytest.mark.parametrize("engine_kind", ["down", "black-hole", "dripping"])
def test_one_deadline_whatever_the_engine_does(tmp_path, engine_kind):
    main = write_component(
        tmp_path,
        """
        import logging
        log = logging.getLogger("app")
        log.setLevel(logging.INFO)
        for i in range(50):
            log.info("record %d", i)
        """,
    )
    with DevEngine() as engine:
        env = engine_env(engine, OTEL_BLRP_EXPORT_TIMEOUT="2000")
    server: socket.socket | _Dripping | None = None
    if engine_kind == "down":
        url = env["SPLIGHT_PLATFORM_API_HOST"]  # nothing listens there any more
    elif engine_kind == "black-hole":
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(16)  # accepts connections, never answers
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
    else:
        server = _Dripping(0.5)
        url = server.url
    env["SPLIGHT_PLATFORM_API_HOST"] = url
    try:
        started = time.monotonic()
        run = run_component(main, env, timeout=60)
        elapsed = time.monotonic() - started
    finally:
        if server is not None:
            server.close()
    assert run.returncode == 0
    # One 2 s deadline after the component's end, plus start-up of the component and runner.
    assert elapsed < 4.5, (elapsed, run.stderr)
    assert "could not be delivered" in run.stderr
    assert "50 log records" in run.stderr and "status Succeeded" in run.stderr
    assert "Traceback" not in run.stderr


def test_the_stop_grace_holds_with_the_engine_unreachable(tmp_path):
    """``docker stop``: SIGTERM, SIGKILL 10 s later. The runner must be gone before that."""
    main = write_component(
        tmp_path,
        """
        import logging, time
        log = logging.getLogger("app")
        log.setLevel(logging.INFO)
        print("up", flush=True)
        while True:
            log.info("tick")
            time.sleep(0.01)
        """,
    )
    with DevEngine() as engine:
        env = engine_env(engine)  # the default 10 s export timeout; nothing listens at the url afterwards
    proc = start_component(main, env)
    wait_for_line(proc.stdout, "up")
    time.sleep(1)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)
    elapsed = time.monotonic() - started
    assert elapsed < 8.8, elapsed
    assert proc.returncode == 128 + signal.SIGTERM
    assert "could not be delivered" in proc.stderr.read()


@pytest.mark.parametrize("stops", [1, 2])
def test_a_stop_signal_during_the_final_flush_brings_its_deadline_forward(tmp_path, stops):
    """The component ended by itself; ``docker stop`` then gives the runner its stop grace, not the export timeout.

    The Engine accepts connections and never answers, so the Engine call in flight
    must be cut at the new deadline, not only the retries after it. One stop
    signal: the grace (2 s here) holds; a second one: the runner gives up at once.
    Either way the exit report is written and names the final status.
    """
    main = write_component(
        tmp_path,
        """
        import logging
        log = logging.getLogger("app")
        log.setLevel(logging.INFO)
        for i in range(20):
            log.info("record %d", i)
        print("ending", flush=True)
        """,
    )
    black_hole = socket.socket()
    black_hole.bind(("127.0.0.1", 0))
    black_hole.listen(16)
    with DevEngine() as engine:
        env = engine_env(
            engine,
            SPLIGHT_PLATFORM_API_HOST=f"http://127.0.0.1:{black_hole.getsockname()[1]}",
            OTEL_BLRP_EXPORT_TIMEOUT="30000",
            SPLIGHT_RUNNER_STOP_GRACE="2",
        )
    try:
        proc = start_component(main, env)
        wait_for_line(proc.stdout, "ending")
        time.sleep(0.5)  # the component has exited; the runner is in its final flush
        assert proc.poll() is None
        started = time.monotonic()
        for _ in range(stops):
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.1)
        proc.wait(timeout=40)
        elapsed = time.monotonic() - started
    finally:
        black_hole.close()
    stderr = proc.stderr.read()
    assert proc.returncode == 0, stderr  # the component's own exit code: it was not stopped
    if stops == 1:
        # Less than the 2 s grace on a quiet machine (1.8 s plus the exit); the bound leaves room for a busy one.
        assert 1.5 < elapsed < 3.0, (elapsed, stderr)
    else:
        assert elapsed < 1.0, (elapsed, stderr)
        assert "second stop signal: giving up on the last deliveries" in stderr
    assert "20 log records" in stderr and "status Succeeded" in stderr, stderr
    assert "Traceback" not in stderr


@pytest.mark.splight_lib
def test_a_component_whose_splight_lib_start_raised_ends_failed(dev_engine, tmp_path):
    pytest.importorskip("splight_lib")
    main = write_component(
        tmp_path,
        """
        from splight_lib.execution.engine import ExecutionEngine

        # What a component whose start() fails does: the engine ran, was stopped, and main raised.
        engine = ExecutionEngine()
        engine.start()
        engine.stop()
        raise RuntimeError("start failed")
        """,
    )
    run = run_component(main, engine_env(dev_engine))
    assert run.returncode == 1, run.stderr
    assert dev_engine.statuses[-1] == ("C1", "Failed")


def test_an_agent_sends_records_and_never_a_status(dev_engine, tmp_path):
    bin_dir = tmp_path / "bin"
    agent = write_component(
        bin_dir,
        f"""\
        #!{sys.executable}
        import logging
        log = logging.getLogger("agent")
        log.setLevel(logging.INFO)
        log.info("agent record")
        """,
        name="splight-agent",
    )
    agent.chmod(0o755)
    env = engine_env(dev_engine, COMPUTE_NODE_ID="N1", PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run([*RUNNER, "run-agent"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert [(r["id"], r["sender_type"], r["message"]) for r in dev_engine.records] == [("N1", "agent", "agent record")]
    assert dev_engine.statuses == []


def test_a_component_outliving_its_killed_runner_gets_sigterm(dev_engine, tmp_path):
    marker = tmp_path / "terminated"
    main = write_component(
        tmp_path,
        f"""
        import signal, sys, time
        def on_term(signum, frame):
            open({str(marker)!r}, "w").close()
            sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
        print("up", flush=True)
        time.sleep(60)
        """,
    )
    proc = start_component(main, engine_env(dev_engine))
    wait_for_line(proc.stdout, "up")
    proc.kill()
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists()


def test_a_component_that_never_loads_the_bootstrap_is_named_on_stderr(dev_engine, tmp_path):
    main = write_component(tmp_path, "import logging\nlogging.getLogger('x').warning('lost')\n")
    env = engine_env(dev_engine)
    done = subprocess.run(
        [*RUNNER, "run", "--component-id=C1", "--", sys.executable, "-I", str(main)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("splight-runner:")]
    assert len(lines) == 1 and "not captured" in lines[0], done.stderr


def test_large_records_with_the_engine_down_keep_the_component_small(tmp_path):
    """10,000 records of 40 KB with nowhere to go: the component holds none of them."""
    main = write_component(
        tmp_path,
        """
        import logging, resource
        log = logging.getLogger("app")
        log.setLevel(logging.INFO)
        big = "x" * 40_000
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for i in range(10_000):
            log.info("%d %s", i, big)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print("grew_kb", after - before, flush=True)
        """,
    )
    with DevEngine() as engine:
        env = engine_env(engine, OTEL_BLRP_EXPORT_TIMEOUT="1000")
    run = run_component(main, env, timeout=120)
    grew_kb = int(run.stdout.split("grew_kb")[1].split()[0])
    assert grew_kb < 64 * 1024, grew_kb  # the channel's byte bound (16 MiB) plus working memory
    assert "could not be delivered" in run.stderr


def _only_child(pid: int) -> int:
    import psutil

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = psutil.Process(pid).children()
        if children:
            return children[0].pid
        time.sleep(0.05)
    raise AssertionError("the runner started no component")


@pytest.mark.parametrize(
    ("ending", "code"),
    [("os._exit(0)", 0), ("os.kill(os.getpid(), signal.SIGTERM); time.sleep(5)", 143)],
    ids=["os._exit", "sigterm"],
)
def test_spans_are_flushed_on_every_exit_path(dev_engine, tmp_path, ending, code):
    from otlp_sink import OtlpSink

    main = write_component(
        tmp_path,
        f"""
        import logging, os, signal, time
        from opentelemetry import trace
        log = logging.getLogger("app")
        log.setLevel(logging.INFO)
        tracer = trace.get_tracer("test")
        for i in range(5):
            with tracer.start_as_current_span(f"span {{i}}"):
                log.info("in span %d", i)
        {ending}
        """,
    )
    with OtlpSink() as sink:
        env = engine_env(
            dev_engine,
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint,
            OTEL_BSP_SCHEDULE_DELAY="60000",  # nothing would leave before exit without the exit flush
        )
        run = run_component(main, env)
        assert run.returncode == code, run.stderr
        assert sink.wait_for(lambda s: len(s.spans) >= 5)
        names = sorted(name for name, _, _ in sink.spans)
    assert names == [f"span {i}" for i in range(5)]
    traced = {(r["trace_id"], r["span_id"]) for r in dev_engine.records if r["message"].startswith("in span")}
    assert traced == {(trace_id, span_id) for _, trace_id, span_id in sink.spans}


def _in_new_pid_namespace(argv: list[str]) -> list[str]:
    """``argv`` as PID 1 of a new pid namespace, as a container runtime starts it (needs root)."""
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, timeout=10)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a pid namespace here: {probe.stderr.decode(errors='replace').strip()}")
    return ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", *argv]


def test_launched_as_splight_agent_does_the_runner_exits_before_docker_stop_kills_it(tmp_path):
    """Runner as PID 1 in /app, ./main.py, the agent's environment, SIGTERM then SIGKILL 10 s later, Engine down."""
    app = tmp_path / "app"
    write_component(
        app,
        """
        import logging, os, time
        log = logging.getLogger("app")
        log.setLevel(getattr(logging, os.environ.get("LOG_LEVEL", "INFO")))
        print("up", flush=True)
        while True:
            log.info("tick")
            time.sleep(0.01)
        """,
    )
    with DevEngine() as engine:
        env = engine_env(engine, LOG_LEVEL="DEBUG", COMPONENT_ID="C1")  # nothing listens at the url afterwards
    argv = _in_new_pid_namespace([*RUNNER, "run-component", "./main.py", "--component-id=C1"])
    proc = subprocess.Popen(argv, cwd=app, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_line(proc.stdout, "up")
    time.sleep(1)
    runner = _only_child(proc.pid)  # PID 1 inside the namespace; the container runtime signals it
    started = time.monotonic()
    os.kill(runner, signal.SIGTERM)
    try:
        proc.wait(timeout=10)  # docker stop's SIGKILL would come here
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the runner was still running when docker stop would have killed it") from None
    assert time.monotonic() - started < 9.5
    assert "could not be delivered" in proc.stderr.read()


def test_as_pid_1_the_runner_reaps_orphans(dev_engine, tmp_path):
    main = write_component(
        tmp_path,
        """
        import os, time
        child = os.fork()
        if child == 0:              # a child that leaves a grandchild behind and exits at once
            if os.fork() == 0:
                time.sleep(0.3)
                os._exit(0)         # the orphan ends: its parent is now PID 1, the runner
            os._exit(0)
        os.waitpid(child, 0)        # the component collects its own child; the orphan is not its
        time.sleep(1.5)
        zombies = []
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/stat") as stat:
                        fields = stat.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if fields[0] == "Z":
                    zombies.append(pid)
        print("zombies", len(zombies), flush=True)
        """,
    )
    argv = _in_new_pid_namespace([*RUNNER, "run-component", str(main), "--component-id=C1"])
    done = subprocess.run(argv, env=engine_env(dev_engine), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "zombies 0" in done.stdout, done.stdout


@pytest.mark.parametrize("traces", ["none", "otlp"])
def test_records_made_through_the_otel_logs_api_reach_the_same_pipeline(dev_engine, tmp_path, traces):
    from otlp_sink import OtlpSink

    main = write_component(
        tmp_path,
        """
        import logging
        from opentelemetry._logs import SeverityNumber, get_logger
        logging.getLogger("app").warning("through logging")
        get_logger("api").emit(body="through the logs api", severity_number=SeverityNumber.WARN)
        """,
    )
    with OtlpSink() as sink:
        env = engine_env(dev_engine, OTEL_TRACES_EXPORTER=traces)
        if traces == "otlp":
            env.update(OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint)
        run = run_component(main, env)
    assert run.returncode == 0, run.stderr
    assert [(r["name"], r["message"], r["loglevel"]) for r in dev_engine.records] == [
        ("app", "through logging", "WARNING"),
        ("api", "through the logs api", "WARNING"),
    ]


def test_the_final_status_is_never_dropped_for_room(dev_engine, tmp_path):
    """The Engine is failing and the queue is full when the component ends: the last word still arrives."""
    dev_engine.refuse_for(2)
    main = write_component(
        tmp_path,
        """
        import logging
        log = logging.getLogger("app")
        log.setLevel(logging.INFO)
        for i in range(100):
            log.info("record %d", i)
        """,
    )
    run = run_component(main, engine_env(dev_engine, OTEL_BLRP_MAX_QUEUE_SIZE="10"))
    assert run.returncode == 0, run.stderr
    assert dev_engine.statuses == [("C1", "Succeeded")]
    assert "status Succeeded" not in run.stderr


def test_the_runner_yields_the_cpu_to_the_component(dev_engine, tmp_path):
    """The runner's export work can wait for a free core; the component's own work cannot."""
    import psutil

    main = write_component(tmp_path, "import os, time\nprint('nice', os.nice(0), flush=True)\ntime.sleep(3)\n")
    proc = start_component(main, engine_env(dev_engine))
    try:
        line = proc.stdout.readline()
        assert line.split() == ["nice", "0"]
        runner = psutil.Process(proc.pid)
        # Every thread of the runner (signals, reader, pipeline, export) runs at niceness 10.
        # A short-lived thread may end between the listing and the reading: it is skipped.
        niceness = set()
        for thread in runner.threads():
            try:
                niceness.add(psutil.Process(thread.id).nice())
            except psutil.NoSuchProcess:
                continue
        assert niceness == {10}
    finally:
        proc.wait(timeout=30)
