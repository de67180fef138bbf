"""A distant Engine (300 ms a call) under a real ``splight-runner run-component``.

One call in flight carries 1,000 records per round trip: 30,000 records logged
at exit took about 10 s, and the final status was lost at the 10 s deadline.
"""

from __future__ import annotations

import time

import pytest

from splight_runner.dev_engine.server import DevEngine
from support import engine_env, run_component, write_component

pytestmark = pytest.mark.component_facing

LOG_AND_EXIT = """
import logging, sys, time
log = logging.getLogger("app")
log.setLevel(logging.INFO)
for i in range(30000):
    log.info("record %d", i)
sys.stdout.write(f"exiting at {time.time()!r}\\n")
sys.stdout.flush()
"""


@pytest.mark.slow
def test_a_far_engine_gets_30000_records_logged_at_exit_and_the_final_status_within_5_s(dev_engine, tmp_path):
    dev_engine.set_delay(0.3)
    main = write_component(tmp_path, LOG_AND_EXIT)
    offset = time.time() - time.monotonic()  # the dev-engine stamps requests with time.monotonic()
    run = run_component(main, engine_env(dev_engine), timeout=120)
    assert run.returncode == 0, run.stderr
    exited = float(run.stdout.rsplit("exiting at ", 1)[1].split()[0])

    messages = [r["message"] for r in dev_engine.records]
    assert len(messages) == len(set(messages)) == 30000
    assert dev_engine.statuses[-1] == ("C1", "Succeeded")
    logs = [r for r in dev_engine.requests if r.path.endswith("/logs/write/") and r.accepted]
    final = [r for r in dev_engine.requests if r.path.endswith("/update-status/") and r.accepted][-1]
    assert final.time >= max(r.time for r in logs)  # the final status after every record
    assert final.time + offset - exited < 5.0
    assert "could not be delivered" not in run.stderr


def test_a_malformed_export_concurrency_is_one_line_and_exit_2(dev_engine: DevEngine, tmp_path):
    main = write_component(tmp_path, "print('never runs')\n")
    run = run_component(main, engine_env(dev_engine, SPLIGHT_RUNNER_EXPORT_CONCURRENCY="lots"))
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "splight-runner: SPLIGHT_RUNNER_EXPORT_CONCURRENCY: 'lots' is not an integer"
    ]
    assert "never runs" not in run.stdout
