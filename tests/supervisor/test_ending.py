"""How it ended reaches the Engine: one record before the final status after every abnormal end.

Real components, real crashes (a NULL read through ctypes, ``os.abort``, SIGKILL,
the kernel's OOM killer in a real memory cgroup), a real dev-engine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from support import RUNNER, engine_env, run_component, write_component

pytestmark = pytest.mark.component_facing

ENDS = """
    import ctypes, logging, os, sys, time
    logging.basicConfig(level=logging.INFO)
    log = logging.getLogger("app")
    how = sys.argv[3]
    log.info("working")
    time.sleep(0.2)  # the channel is quiet again: the next record leaves at once
    log.warning("last record before %s", how)
    if how == "segfault":
        ctypes.string_at(0)
    elif how == "abort":
        os.abort()
    elif how == "systemexit":
        raise SystemExit("configuration file /etc/x.yaml is missing")
    elif how == "prints":
        print("could not open the port", file=sys.stderr)
        sys.exit(3)
    elif how == "os_exit":
        os._exit(5)
    elif how == "uncaught":
        raise RuntimeError("the end")
"""


def _last_two(dev_engine) -> tuple[dict, dict]:
    last_two = dev_engine.records_in_time_order[-2:]
    return last_two[0], last_two[1]


def _ran(dev_engine, tmp_path, how: str):
    main = write_component(tmp_path / "app", ENDS)
    return run_component(main, engine_env(dev_engine), args=[how])


def test_a_segfault_is_named_with_pythons_fatal_error_stack(dev_engine, tmp_path):
    run = _ran(dev_engine, tmp_path, "segfault")

    assert run.returncode == 139
    before, ending = _last_two(dev_engine)
    assert before["message"] == "last record before segfault"  # logged a moment before the crash
    assert ending["name"] == "splight_runner" and ending["loglevel"] == "ERROR"
    assert ending["message"].startswith("The component was killed by SIGSEGV (Segmentation fault).")
    assert "Fatal Python error: Segmentation fault" in ending["traceback"]
    assert "in string_at" in ending["traceback"] and "main.py" in ending["traceback"]
    assert "splight_capture" not in ending["traceback"]  # the runner's own thread is left out
    assert dev_engine.statuses == [("C1", "Failed")]
    assert "Fatal Python error" not in run.stderr  # as without the runner: Python prints nothing there


def test_an_abort_is_named(dev_engine, tmp_path):
    run = _ran(dev_engine, tmp_path, "abort")

    assert run.returncode == 134
    before, ending = _last_two(dev_engine)
    assert before["message"] == "last record before abort"
    assert ending["message"].startswith("The component was killed by SIGABRT (Aborted).")
    assert "Fatal Python error: Aborted" in ending["traceback"]
    assert dev_engine.statuses == [("C1", "Failed")]


def test_systemexit_text_reaches_the_engine(dev_engine, tmp_path):
    run = _ran(dev_engine, tmp_path, "systemexit")

    assert run.returncode == 1
    _, ending = _last_two(dev_engine)
    assert ending["message"] == "The component exited with code 1. What it last wrote to stderr is attached."
    assert ending["traceback"].splitlines()[-1] == "configuration file /etc/x.yaml is missing"
    assert dev_engine.statuses == [("C1", "Failed")]


def test_a_component_that_only_prints_and_exits_3(dev_engine, tmp_path):
    run = _ran(dev_engine, tmp_path, "prints")

    assert run.returncode == 3
    _, ending = _last_two(dev_engine)
    assert ending["message"].startswith("The component exited with code 3.")
    assert ending["traceback"].splitlines()[-1] == "could not open the port"
    assert dev_engine.statuses == [("C1", "Failed")]


def test_os_exit_after_a_record_loses_nothing(dev_engine, tmp_path):
    run = _ran(dev_engine, tmp_path, "os_exit")

    assert run.returncode == 5
    before, ending = _last_two(dev_engine)
    assert before["message"] == "last record before os_exit"
    assert ending["message"].startswith("The component exited with code 5.")


def test_an_uncaught_traceback_is_shipped_once(dev_engine, tmp_path):
    run = _ran(dev_engine, tmp_path, "uncaught")

    assert run.returncode == 1
    uncaught, ending = _last_two(dev_engine)
    assert uncaught["loglevel"] == "CRITICAL" and "RuntimeError: the end" in uncaught["traceback"]
    assert ending["message"].startswith("The component exited with code 1.")
    assert "RuntimeError" not in ending["traceback"]  # the same text is not sent twice
    assert ending["traceback"].splitlines()[-1] == "WARNING:app:last record before uncaught"


@pytest.mark.parametrize("how", ["", "sigterm"])
def test_exit_0_and_a_forwarded_stop_send_no_such_record(how, dev_engine, tmp_path):
    main = write_component(
        tmp_path / "app",
        """
        import logging, sys, time
        logging.getLogger("app").warning("up")
        print("ready", flush=True)
        if len(sys.argv) > 3:
            time.sleep(30)
        """,
    )
    runner = subprocess.Popen(
        [*RUNNER, "run-component", str(main), "--component-id=C1", "--", *([how] if how else [])],
        env=engine_env(dev_engine),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert runner.stdout.readline().strip() == "ready"
    if how:
        time.sleep(0.3)
        runner.send_signal(signal.SIGTERM)
    runner.communicate(timeout=30)

    assert [r["name"] for r in dev_engine.records] == ["app"]
    assert dev_engine.statuses == [("C1", "Stopped" if how else "Succeeded")]


def test_a_rarely_logging_component_killed_1_ms_after_a_record_loses_it(dev_engine, tmp_path):
    main = write_component(
        tmp_path / "app",
        """
        import logging, os, signal, time
        log = logging.getLogger("app")
        for i in range(3):
            time.sleep(0.3)
            log.warning("record %d", i)
        time.sleep(0.001)
        os.kill(os.getpid(), signal.SIGKILL)
        """,
    )
    for attempt in range(5):
        dev_engine.records.clear()
        run = run_component(main, engine_env(dev_engine))
        assert run.returncode == 137
        messages = [r["message"] for r in dev_engine.records]
        assert messages[:3] == ["record 0", "record 1", "record 2"], (attempt, messages)
        assert messages[3].startswith("The component was killed by SIGKILL (not by the kernel's OOM killer).")


def test_an_exec_self_restart_loses_no_record(dev_engine, tmp_path):
    main = write_component(
        tmp_path / "app",
        """
        import logging, os, sys
        log = logging.getLogger("app")
        generation = int(os.environ.get("GENERATION", "0"))
        for i in range(7):
            log.warning("generation %d record %d", generation, i)
        if generation < 2:
            os.environ["GENERATION"] = str(generation + 1)
            os.execv(sys.executable, [sys.executable, *sys.argv])
        """,
    )

    run = run_component(main, engine_env(dev_engine))

    assert run.returncode == 0, run.stderr
    expected = [f"generation {g} record {i}" for g in range(3) for i in range(7)]
    assert [r["message"] for r in dev_engine.records] == expected
    assert dev_engine.statuses == [("C1", "Succeeded")]


def test_the_components_stderr_is_byte_for_byte_what_it_is_without_the_runner(dev_engine, tmp_path):
    main = write_component(
        tmp_path / "app",
        """
        import logging, sys, warnings
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
        sys.stderr.write("partial ")
        sys.stderr.write("line\\n")
        logging.getLogger("app").info("through a handler")
        warnings.warn("a warning")
        print("to stdout")
        sys.stderr.buffer.write(b"raw bytes \\xff\\n")
        sys.stderr.flush()
        raise SystemExit("the end")
        """,
    )
    env = engine_env(dev_engine)

    plain = subprocess.run(
        [sys.executable, "main.py", "--component-id", "C1"], cwd=main.parent, env=env, capture_output=True, timeout=60
    )
    under = subprocess.run(
        [*RUNNER, "run-component", str(main), "--component-id=C1"], env=env, capture_output=True, timeout=60
    )

    assert under.returncode == plain.returncode == 1
    assert under.stdout == plain.stdout
    assert under.stderr == plain.stderr
    assert b"raw bytes \xff" in under.stderr


CGROUP_V1 = Path("/sys/fs/cgroup/memory")


def _memory_cgroup(tmp_path: Path) -> Path:
    if not (os.geteuid() == 0 and (CGROUP_V1 / "cgroup.procs").exists()):
        pytest.skip("no writable cgroup v1 memory controller here (needs root)")
    group = CGROUP_V1 / f"splight-runner-test-{uuid.uuid4().hex[:8]}"
    try:
        group.mkdir()
    except OSError as error:
        pytest.skip(f"cannot make a memory cgroup here ({error})")
    (group / "memory.limit_in_bytes").write_text(str(64 << 20))
    # Without swap accounting the memory limit alone does it.
    with contextlib.suppress(OSError), open(group / "memory.memsw.limit_in_bytes", "w") as file:
        file.write(str(64 << 20))
    return group


def test_the_oom_killer_is_named_with_the_limit(dev_engine, tmp_path):
    group = _memory_cgroup(tmp_path)
    # The component's interpreter moves itself into the cgroup, then becomes Python: only it is limited.
    wrapper = tmp_path / "python-in-cgroup"
    wrapper.write_text(f'#!/bin/sh\necho $$ > {group}/cgroup.procs\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    main = write_component(
        tmp_path / "app",
        """
        import logging, time
        log = logging.getLogger("app")
        log.warning("allocating")
        time.sleep(0.2)
        hog = []
        while True:
            hog.append(bytearray(8 << 20))
        """,
    )
    try:
        run = run_component(main, engine_env(dev_engine, SPLIGHT_RUNNER_PYTHON=str(wrapper)), timeout=120)
    finally:
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)

    assert run.returncode == 137, run.stderr
    messages = [r["message"] for r in dev_engine.records]
    assert messages[0] == "allocating"
    assert messages[-1].startswith(
        "The component was killed by SIGKILL: the kernel's OOM killer ended it, out of memory (memory limit 64 MiB)."
    ), dev_engine.records[-1]
    assert dev_engine.statuses == [("C1", "Failed")]
