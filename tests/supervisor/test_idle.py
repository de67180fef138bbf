"""Nothing runs while nothing happens: an idle component and its runner wake up for nothing."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from support import RUNNER, engine_env, wait_for_line, write_component

pytestmark = pytest.mark.component_facing


def _switches(pid: int) -> int:
    """Voluntary context switches of every thread of ``pid`` (each wake-up from a wait is one)."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


def test_an_idle_component_and_its_runner_do_not_wake_up(dev_engine, tmp_path):
    import psutil

    main = write_component(
        tmp_path / "app",
        """
        import logging, time
        logging.getLogger("app").warning("one record, then quiet")
        print("ready", flush=True)
        time.sleep(30)
        """,
    )
    runner = subprocess.Popen(
        [*RUNNER, "run-component", str(main), "--component-id=C1"],
        env=engine_env(dev_engine),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_for_line(runner.stdout, "ready")
        assert dev_engine.wait_for(lambda e: e.records)
        [component] = psutil.Process(runner.pid).children()
        time.sleep(2)  # the record's batch, its POST and the channel's burst are over
        before = _switches(runner.pid) + _switches(component.pid)
        time.sleep(5)
        woke = _switches(runner.pid) + _switches(component.pid) - before
    finally:
        runner.kill()
        runner.wait()
    assert woke <= 2, f"{woke} wake-ups in 5 s of nothing"
