"""Signals reach the component as they would without the runner: once, and not at all when ignored."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

from support import RUNNER, engine_env, run_component, wait_for_line, write_component

pytestmark = pytest.mark.component_facing

CLEANUP = """
    import logging, signal, sys, time
    log = logging.getLogger("app")
    print("hup", signal.getsignal(signal.SIGHUP) == signal.SIG_IGN, flush=True)
    try:
        print("ready", flush=True)
        while True:
            time.sleep(0.05)
    except KeyboardInterrupt:
        log.warning("stopping scheduler")
        time.sleep(0.5)  # a second SIGINT would land here
        log.warning("stopped cleanly")
"""


def _start(main, env, **popen):
    return subprocess.Popen(
        [*RUNNER, "run-component", str(main), "--component-id=C1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def test_a_stop_signal_sent_to_the_whole_process_group_arrives_once(dev_engine, tmp_path):
    main = write_component(tmp_path / "app", CLEANUP)
    runner = _start(main, engine_env(dev_engine), start_new_session=True)  # as a shell script or systemd
    wait_for_line(runner.stdout, "ready")

    os.killpg(runner.pid, signal.SIGINT)  # kill -INT -PGID
    _, err = runner.communicate(timeout=30)

    assert runner.returncode == 0, err
    assert "Traceback" not in err
    assert [r["message"] for r in dev_engine.records] == ["stopping scheduler", "stopped cleanly"]
    assert dev_engine.statuses == [("C1", "Stopped")]


@pytest.mark.skipif(shutil.which("timeout") is None, reason="GNU timeout is not installed")
def test_gnu_timeout_stops_the_component_once(dev_engine, tmp_path):
    main = write_component(tmp_path / "app", CLEANUP)

    done = subprocess.run(
        ["timeout", "-s", "INT", "6", *RUNNER, "run-component", str(main), "--component-id=C1"],
        env=engine_env(dev_engine),
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert done.returncode == 124  # timeout's own "the command timed out"
    assert "Traceback" not in done.stderr
    assert [r["message"] for r in dev_engine.records] == ["stopping scheduler", "stopped cleanly"]
    assert dev_engine.statuses == [("C1", "Stopped")]


def test_a_signal_ignored_when_the_runner_started_stays_ignored(dev_engine, tmp_path):
    main = write_component(tmp_path / "app", CLEANUP)
    runner = _start(
        main,
        engine_env(dev_engine),
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),  # as nohup does
    )
    assert runner.stdout.readline().strip() == "hup True"  # the component inherited the disposition
    wait_for_line(runner.stdout, "ready")

    os.killpg(runner.pid, signal.SIGHUP)
    runner.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert runner.poll() is None  # both ignore it, as without the runner
    runner.send_signal(signal.SIGINT)
    _, err = runner.communicate(timeout=30)

    assert runner.returncode == 0, err
    assert [r["message"] for r in dev_engine.records] == ["stopping scheduler", "stopped cleanly"]


def test_a_tmpdir_too_long_for_a_unix_socket_still_works(dev_engine, tmp_path):
    long_tmp = tmp_path / ("t" * 60) / ("m" * 70)
    long_tmp.mkdir(parents=True)
    main = write_component(tmp_path / "app", "import logging\nlogging.getLogger('app').warning('shipped')\n")

    run = run_component(main, engine_env(dev_engine, TMPDIR=str(long_tmp)))

    assert len(str(long_tmp)) > 130
    assert run.returncode == 0, run.stderr
    assert "splight-runner" not in run.stderr  # no traceback, no line: it just works
    assert [r["message"] for r in dev_engine.records] == ["shipped"]
