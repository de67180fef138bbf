"""A component built on the real splight-lib, run the way the Engine runs it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from support import engine_env, run_component

pytestmark = [pytest.mark.component_facing, pytest.mark.splight_lib]

COMPONENTS = Path(__file__).parent / "components"


def _env(dev_engine, tmp_path):
    # splight-lib writes ~/.splight/config on import and logs to a file: keep both in tmp.
    return engine_env(dev_engine, HOME=str(tmp_path), SPLIGHT_COMPONENT_LOG_FILE=str(tmp_path / "components.log"))


def test_failing_critical_task_reports_running_then_failed_and_exits_1(dev_engine, tmp_path):
    started = time.monotonic()
    run = run_component(COMPONENTS / "splight_failing_task" / "main.py", _env(dev_engine, tmp_path), timeout=90)
    assert run.returncode == 1, run.stderr
    assert dev_engine.statuses == [("C1", "Running"), ("C1", "Failed")]
    # Reported when they happened, not at splight-lib's 5 s poll: Failed ~2 s after Running.
    status_times = [r.time for r in dev_engine.requests if "update-status" in r.path]
    assert status_times[1] - status_times[0] < 4.5
    records = dev_engine.records
    messages = [r["message"] for r in records]
    assert "working" in messages
    failure = next(r for r in records if "critical task failed" in r["traceback"])
    assert failure["loglevel"] in ("ERROR", "CRITICAL")
    # splight-lib's logger is unregistered and non-propagating; its records still arrive, with tags.
    working = next(r for r in records if r["message"] == "working")
    assert working["name"] == "FailingComponent"
    assert working["sender_type"] == "component" and working["id"] == "C1"
    # splight-lib's wrapper hides the call site on Python 3.11+ (every record says logging.py);
    # the runner reports the component's own file, as the Engine's filename means.
    assert working["filename"] == "main.py"
    assert time.monotonic() - started < 60


def test_finishing_component_reports_running_then_stopped_and_exits_0(dev_engine, tmp_path):
    run = run_component(COMPONENTS / "splight_finishing" / "main.py", _env(dev_engine, tmp_path), timeout=90)
    assert run.returncode == 0, run.stderr
    # Stopped is terminal: the supervisor owes no final status after it.
    assert dev_engine.statuses == [("C1", "Running"), ("C1", "Stopped")]
