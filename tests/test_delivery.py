"""Delivery guarantees: nothing lost, nothing duplicated, whatever the component or the Engine does."""

from __future__ import annotations

import collections
import json
import re
import time

import pytest

from splight_runner.dev_engine.server import DevEngine
from support import engine_env, run_component, start_component, write_component

pytestmark = pytest.mark.component_facing

LOGS_N = """
import logging, sys

logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
log = logging.getLogger("app")
N = {n}
for i in range(N):
    log.info("record %d", i)
"""


def _messages(engine: DevEngine) -> list[str]:
    return [r["message"] for r in engine.records]


def _assert_exactly_once(engine: DevEngine, n: int) -> None:
    messages = [m for m in _messages(engine) if m.startswith("record ")]
    duplicates = [m for m, count in collections.Counter(messages).items() if count > 1]
    assert duplicates == []
    assert sorted(messages, key=lambda m: int(m.split()[1])) == [f"record {i}" for i in range(n)]


# --- every exit path flushes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("ending", "code"),
    [
        ("pass", 0),
        ("sys.exit(4)", 4),
        ("os._exit(5)", 5),
        ("raise RuntimeError('boom')", 1),
        ("os.kill(os.getpid(), signal.SIGINT); time.sleep(5)", 130),
        ("os.kill(os.getpid(), signal.SIGTERM); time.sleep(5)", 143),
    ],
    ids=["return", "sys.exit", "os._exit", "uncaught", "sigint-to-component", "sigterm-to-component"],
)
def test_every_exit_path_flushes_pending_records(dev_engine, tmp_path, ending, code):
    source = LOGS_N.format(n=300) + f"import os, signal, sys, time\n{ending}\n"
    main = write_component(tmp_path, source)
    # A 60 s schedule delay: nothing would leave before exit without the exit flush.
    run = run_component(main, engine_env(dev_engine, OTEL_BLRP_SCHEDULE_DELAY="60000"))
    assert run.returncode == code, run.stderr
    _assert_exactly_once(dev_engine, 300)


def test_fatal_error_in_a_non_daemon_thread_is_shipped_with_everything_before_it(dev_engine, tmp_path):
    main = write_component(
        tmp_path,
        """
        import logging, threading
        log = logging.getLogger("app")
        log.setLevel(logging.INFO)
        def worker():
            for i in range(100):
                log.info("record %d", i)
            raise MemoryError("worker ran out")
        t = threading.Thread(target=worker, name="crunch")
        t.start()
        """,
    )
    run = run_component(main, engine_env(dev_engine, OTEL_BLRP_SCHEDULE_DELAY="60000"))
    assert run.returncode == 0
    _assert_exactly_once(dev_engine, 100)
    crash = dev_engine.records_in_time_order[-1]
    assert crash["loglevel"] == "ERROR" and "crunch" in crash["message"]
    assert "MemoryError: worker ran out" in crash["traceback"]


def test_a_dead_engine_delays_exit_by_the_export_timeout_at_most(tmp_path):
    with DevEngine() as engine:
        url = engine.url
    main = write_component(tmp_path, LOGS_N.format(n=50))
    env = engine_env(engine, OTEL_BLRP_EXPORT_TIMEOUT="2000")
    env["SPLIGHT_PLATFORM_API_HOST"] = url  # nothing listens there any more
    started = time.monotonic()
    run = run_component(main, env)
    elapsed = time.monotonic() - started
    assert run.returncode == 0
    # 2 s for the component's flush + 2 s for the supervisor's final status, plus start-up.
    assert elapsed < 8, elapsed
    assert "could not be delivered" in run.stderr
    assert "Traceback" not in run.stderr


# --- retries ------------------------------------------------------------------------------------


def test_transient_failures_are_retried_until_delivered_once(dev_engine, tmp_path):
    dev_engine.fail_next(4, 503, endpoint="logs")
    dev_engine.fail_next(2, 502, endpoint="status")
    main = write_component(tmp_path, LOGS_N.format(n=200))
    run = run_component(main, engine_env(dev_engine))
    assert run.returncode == 0
    _assert_exactly_once(dev_engine, 200)
    assert dev_engine.statuses == [("C1", "Succeeded")]
    assert [r.status for r in dev_engine.requests if "logs" in r.path][:4] == [503] * 4
    # Two outages (the records', then the final status's) within a minute: each line is said in full
    # the first time only; the second outage is counted into the next summary line (a minute later).
    assert run.stderr.count("cannot deliver to the Engine") == 1
    assert run.stderr.count("delivering to the Engine again") == 1


def test_retry_after_is_honoured(dev_engine, tmp_path):
    dev_engine.fail_next(1, 429, retry_after="2", endpoint="logs")
    main = write_component(tmp_path, LOGS_N.format(n=10))
    run = run_component(main, engine_env(dev_engine))
    assert run.returncode == 0
    _assert_exactly_once(dev_engine, 10)
    logs = [r for r in dev_engine.requests if "logs" in r.path]
    assert logs[0].status == 429 and logs[1].accepted
    assert logs[1].time - logs[0].time >= 2.0


def test_connection_cut_mid_response_is_retried_without_duplicates(dev_engine, tmp_path):
    dev_engine.close_mid_response(2)
    main = write_component(tmp_path, LOGS_N.format(n=100))
    run = run_component(main, engine_env(dev_engine))
    assert run.returncode == 0
    _assert_exactly_once(dev_engine, 100)


def test_a_client_error_drops_that_batch_once_and_says_why(dev_engine, tmp_path):
    dev_engine.fail_next(1, 400, endpoint="logs")
    main = write_component(
        tmp_path,
        """
        import logging, time
        log = logging.getLogger("app")
        log.setLevel(logging.INFO)
        log.info("first batch")
        time.sleep(3.0)  # the first batch has gone out alone, even where the runner starts slowly
        log.info("second batch")
        """,
    )
    run = run_component(main, engine_env(dev_engine, OTEL_BLRP_SCHEDULE_DELAY="200"))
    assert run.returncode == 0
    assert _messages(dev_engine) == ["second batch"]
    assert len([r for r in dev_engine.requests if r.status == 400]) == 1  # never retried
    lines = [line for line in run.stderr.splitlines() if "rejected" in line]
    assert len(lines) == 1 and "400" in lines[0]
    assert "dev-secret" not in run.stderr


@pytest.mark.splight_lib
def test_status_calls_are_retried_and_keep_their_order(dev_engine, tmp_path):
    from pathlib import Path

    dev_engine.fail_next(3, 503, endpoint="status")
    components = Path(__file__).parent / "components"
    env = engine_env(dev_engine, HOME=str(tmp_path), SPLIGHT_COMPONENT_LOG_FILE=str(tmp_path / "c.log"))
    run = run_component(components / "splight_failing_task" / "main.py", env, timeout=90)
    assert run.returncode == 1
    assert dev_engine.statuses == [("C1", "Running"), ("C1", "Failed")]


# --- no duplicates ------------------------------------------------------------------------------


def test_a_slow_engine_and_flushes_racing_the_worker_send_nothing_twice(dev_engine, tmp_path):
    dev_engine.set_delay(2.0)
    main = write_component(
        tmp_path,
        """
        import logging, time
        from opentelemetry._logs import get_logger_provider
        log = logging.getLogger("app")
        log.setLevel(logging.INFO)
        provider = get_logger_provider()
        for i in range(1500):
            log.info("record %d", i)
            if i % 300 == 0 and hasattr(provider, "force_flush"):
                provider.force_flush(100)  # in-process pipeline: flushes race the worker, which is mid-POST
        """,
    )
    run = run_component(main, engine_env(dev_engine, OTEL_BLRP_SCHEDULE_DELAY="50", OTEL_BLRP_EXPORT_TIMEOUT="20000"))
    assert run.returncode == 0, run.stderr
    _assert_exactly_once(dev_engine, 1500)


# --- bounded memory, honest accounting ----------------------------------------------------------

DROPPED = re.compile(r"dropped (\d+) log records")


def test_overflow_drops_newest_counts_exactly_and_reports_when_the_engine_is_back(dev_engine, tmp_path):
    dev_engine.refuse_for(3)
    main = write_component(
        tmp_path,
        """
        import logging, time
        log = logging.getLogger("app")
        log.setLevel(logging.INFO)
        for i in range(1000):
            log.info("record %d", i)
            if i % 100 == 0:
                time.sleep(0.05)
        time.sleep(6)  # the Engine comes back meanwhile
        """,
    )
    run = run_component(main, engine_env(dev_engine, OTEL_BLRP_MAX_QUEUE_SIZE="100", OTEL_BLRP_EXPORT_TIMEOUT="20000"))
    assert run.returncode == 0, run.stderr
    delivered = [m for m in _messages(dev_engine) if m.startswith("record ")]
    warnings = [r for r in dev_engine.records if DROPPED.search(r["message"])]
    assert warnings, _messages(dev_engine)[-5:]
    assert all(w["loglevel"] == "WARNING" for w in warnings)
    dropped = sum(int(DROPPED.search(w["message"]).group(1)) for w in warnings)
    assert len(delivered) + dropped == 1000
    assert len(set(delivered)) == len(delivered)
    # Drop-newest: records already queued are never pushed out by later ones, and order holds.
    indexes = [int(m.split()[1]) for m in delivered]
    assert indexes == sorted(indexes)
    assert indexes[:100] == list(range(100))


# --- secrets --------------------------------------------------------------------------------------


def test_the_secret_key_never_leaves_for_anywhere_but_the_engine_header(tmp_path):
    secret = "s3cr3t-KEY-do-not-leak-7781"
    with DevEngine(secret_key=secret) as engine:
        engine.fail_next(2, 503)
        main = write_component(
            tmp_path,
            """
            import logging, os
            log = logging.getLogger("app")
            log.setLevel(logging.INFO)
            for i in range(20):
                log.info("record %d", i)
            try:
                raise ValueError("boom")
            except ValueError:
                log.exception("with traceback")
            os._exit(3)
            """,
        )
        env = engine_env(engine, SPLIGHT_SECRET_KEY=secret, OTEL_LOGS_EXPORTER="splight,console")
        run = run_component(main, env)
        assert run.returncode == 3
        wrong = engine_env(engine, SPLIGHT_SECRET_KEY=secret + "-wrong")
        rejected = run_component(main, wrong)
        everything = run.stdout + run.stderr + rejected.stdout + rejected.stderr
        everything += json.dumps(engine.records) + " ".join(r.path for r in engine.requests)
        assert engine.records  # something was delivered and inspected
        assert secret not in everything


# --- slow scenarios (CI runs them too) ------------------------------------------------------------


@pytest.mark.slow
def test_a_60_second_outage_loses_nothing_at_200_records_per_second(dev_engine, tmp_path):
    main = write_component(
        tmp_path,
        """
        import logging, time
        log = logging.getLogger("app")
        log.setLevel(logging.INFO)
        start = time.monotonic()
        for i in range(15000):  # 75 s at 200/s
            log.info("record %d", i)
            time.sleep(max(0.0, start + (i + 1) / 200 - time.monotonic()))
        """,
    )
    proc = start_component(main, engine_env(dev_engine, OTEL_BLRP_SCHEDULE_DELAY="1000"))
    try:
        assert dev_engine.wait_for(lambda e: len(e.records) >= 400, timeout=20)
        dev_engine.refuse_for(60)
        _, err = proc.communicate(timeout=240)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert dev_engine.wait_for(lambda e: len(e.records) >= 15000, timeout=60)
    _assert_exactly_once(dev_engine, 15000)
    assert not [m for m in _messages(dev_engine) if "dropped" in m]


@pytest.mark.slow
def test_memory_stays_bounded_under_a_burst_of_one_million_records(tmp_path):
    with DevEngine() as engine:
        engine.refuse_for(3600)  # the Engine is down for the whole burst
        main = write_component(
            tmp_path,
            """
            import logging, os, resource, sys, time
            log = logging.getLogger("app")
            log.setLevel(logging.INFO)
            def rss_mib():
                return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            def runner_peak_mib():  # the parent is the runner: its queues hold what the Engine did not take
                with open(f"/proc/{os.getppid()}/status") as status:
                    line = next(line for line in status if line.startswith("VmHWM:"))
                return int(line.split()[1]) / 1024
            for i in range(20_000):
                log.info("warm-up %d of %d", i, 1_000_000, extra={"tags": "RUNTIME"})
            after_queue_full = rss_mib()
            for i in range(1_000_000):
                log.info("record %d of %d", i, 1_000_000, extra={"tags": "RUNTIME"})
            time.sleep(1)  # the runner reads and feeds what is in flight
            print(f"{after_queue_full:.1f} {rss_mib():.1f} {runner_peak_mib():.1f}", flush=True)
            """,
        )
        run = run_component(main, engine_env(engine, OTEL_BLRP_EXPORT_TIMEOUT="1000"), timeout=600)
    assert run.returncode == 0, run.stderr
    after_queue_full, peak, runner_peak = map(float, run.stdout.split())
    # Once the queue is full, a million more records must not grow the process.
    assert peak - after_queue_full < 64, (after_queue_full, peak)
    assert peak < 400, peak
    # The runner: its base, the intake's 32 MiB of frames and 20,000 queued Engine records of these
    # (about 8 MiB). It held decoded records against a bound in frame bytes before: 45-161 MiB.
    assert runner_peak < 80, runner_peak
