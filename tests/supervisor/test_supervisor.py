"""Supervisor: the runner stays the parent, passes exit codes through and owes a final status."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from support import RUNNER, engine_env, run_component, start_component, wait_for_line, write_component

pytestmark = pytest.mark.component_facing


def test_exit_zero_is_passed_through_and_reported_succeeded(dev_engine, tmp_path):
    main = write_component(tmp_path, "print('done')\n")
    run = run_component(main, engine_env(dev_engine))
    assert run.returncode == 0
    assert run.stdout == "done\n"
    assert dev_engine.statuses == [("C1", "Succeeded")]


def test_exit_code_is_passed_through_and_reported_failed(dev_engine, tmp_path):
    main = write_component(tmp_path, "import sys\nsys.exit(3)\n")
    run = run_component(main, engine_env(dev_engine))
    assert run.returncode == 3
    assert dev_engine.statuses == [("C1", "Failed")]


@pytest.mark.parametrize(
    ("source", "signum"),
    [
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", signal.SIGKILL),
        ("import ctypes\nctypes.string_at(0)\n", signal.SIGSEGV),
    ],
    ids=["sigkill", "segfault"],
)
def test_death_by_signal_exits_128_plus_n_and_reports_failed(dev_engine, tmp_path, source, signum):
    main = write_component(tmp_path, source)
    run = run_component(main, engine_env(dev_engine))
    assert run.returncode == 128 + signum
    assert dev_engine.statuses == [("C1", "Failed")]


def test_arguments_cwd_and_component_id_reach_the_component(dev_engine, tmp_path):
    main = write_component(
        tmp_path / "comp",
        """
        import os, sys
        print(sys.argv[1:])
        print(os.getcwd() == os.path.dirname(os.path.abspath(__file__)))
        print(os.environ["COMPONENT_ID"], os.environ["PROCESS_TYPE"])
        """,
    )
    run = run_component(main, engine_env(dev_engine), component_id="abc-123", args=["--flag", "x y"])
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["['--component-id', 'abc-123', '--flag', 'x y']", "True", "abc-123 component"]


def test_component_id_also_accepted_as_separate_argument(dev_engine, tmp_path):
    main = write_component(tmp_path, "import sys\nprint(sys.argv[1:])\n")
    done = subprocess.run(
        [*RUNNER, "run-component", str(main), "--component-id", "C9"],
        env=engine_env(dev_engine),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "['--component-id', 'C9']\n"
    assert dev_engine.statuses == [("C9", "Succeeded")]


def test_stdin_stays_the_components(dev_engine, tmp_path):
    main = write_component(tmp_path, "import sys\nprint(sys.stdin.read().upper())\n")
    done = subprocess.run(
        [*RUNNER, "run-component", str(main), "--component-id=C1"],
        env=engine_env(dev_engine),
        input="hello",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout == "HELLO\n"


@pytest.mark.parametrize(("signum", "expected_code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_stop_signal_to_the_runner_is_forwarded_flushes_and_reports_stopped(
    dev_engine, tmp_path, signum, expected_code
):
    main = write_component(
        tmp_path,
        """
        import logging, time
        logging.basicConfig(level=logging.INFO)
        log = logging.getLogger("app")
        for i in range(50):
            log.info("before stop %d", i)
        print("ready", flush=True)
        time.sleep(60)
        """,
    )
    proc = start_component(main, engine_env(dev_engine, OTEL_BLRP_SCHEDULE_DELAY="30000"))
    try:
        wait_for_line(proc.stdout, "ready")
        proc.send_signal(signum)
        assert proc.wait(timeout=30) == expected_code
    finally:
        proc.kill()
        proc.communicate()
    # The records were pending (30 s schedule delay): the exit flush delivered them.
    assert [r["message"] for r in dev_engine.records] == [f"before stop {i}" for i in range(50)]
    assert dev_engine.statuses == [("C1", "Stopped")]


def test_components_own_sigterm_handler_runs(dev_engine, tmp_path):
    main = write_component(
        tmp_path,
        """
        import logging, signal, sys, time
        def on_term(signum, frame):
            logging.getLogger("app").warning("cleaning up")
            print("handler ran", flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
        print("ready", flush=True)
        time.sleep(60)
        """,
    )
    proc = start_component(main, engine_env(dev_engine))
    try:
        wait_for_line(proc.stdout, "ready")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        out, _ = proc.communicate()
    finally:
        proc.kill()
    assert "handler ran" in out
    assert [r["message"] for r in dev_engine.records] == ["cleaning up"]
    assert dev_engine.statuses == [("C1", "Stopped")]


def test_sigterm_sent_to_the_component_directly_still_flushes(dev_engine, tmp_path):
    main = write_component(
        tmp_path,
        """
        import logging, os, signal, time
        logging.basicConfig(level=logging.INFO)
        for i in range(20):
            logging.getLogger("app").info("pending %d", i)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
        """,
    )
    run = run_component(main, engine_env(dev_engine, OTEL_BLRP_SCHEDULE_DELAY="30000"))
    assert run.returncode == 128 + signal.SIGTERM
    messages = [r["message"] for r in dev_engine.records]
    assert messages[:20] == [f"pending {i}" for i in range(20)]
    assert messages[20:] == [
        "The component was killed by SIGTERM (Terminated). What it last wrote to stderr is attached."
    ]
    # Nobody asked the runner to stop it: the component died of a signal → Failed.
    assert dev_engine.statuses == [("C1", "Failed")]


def test_unknown_program_is_a_usage_error_in_one_line(dev_engine, tmp_path):
    done = subprocess.run(
        [*RUNNER, "run", "--component-id=C1", "--", "definitely-not-a-command-xyz"],
        env=engine_env(dev_engine),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "definitely-not-a-command-xyz" in done.stderr


def test_run_accepts_a_module(dev_engine, tmp_path):
    write_component(tmp_path / "pkg", "import logging\nlogging.getLogger('m').warning('from module')\n", "__main__.py")
    done = subprocess.run(
        [*RUNNER, "run", "--component-id=C1", "--", "-m", "pkg"],
        env=engine_env(dev_engine),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert dev_engine.wait_for(lambda e: len(e.records) >= 1)
    assert dev_engine.records[0]["message"] == "from module"
    assert dev_engine.records[0]["filename"] == "__main__.py"


def test_python_executable_is_the_runners(dev_engine, tmp_path):
    main = write_component(tmp_path, "import sys\nprint(sys.executable)\n")
    run = run_component(main, engine_env(dev_engine))
    assert run.stdout.strip() == sys.executable


def test_a_second_stop_signal_kills_a_component_that_ignores_the_first(dev_engine, tmp_path):
    main = write_component(
        tmp_path,
        """
        import signal, time
        def ignore(signum, frame):
            print("ignoring", signal.Signals(signum).name, flush=True)
        signal.signal(signal.SIGTERM, ignore)
        print("ready", flush=True)
        time.sleep(60)
        """,
    )
    proc = start_component(main, engine_env(dev_engine))
    try:
        wait_for_line(proc.stdout, "ready")
        proc.send_signal(signal.SIGTERM)
        wait_for_line(proc.stdout, "ignoring SIGTERM")  # the first one was forwarded
        time.sleep(0.3)  # a second stop, not the same one sent two ways (within 50 ms it would be one)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGKILL
        _, err = proc.communicate()
    finally:
        proc.kill()
    assert "second stop signal" in err
    assert dev_engine.statuses == [("C1", "Stopped")]


def test_the_state_directory_is_removed_even_after_a_kill_mid_write(dev_engine, tmp_path):
    """The supervisor's private folder (its channel socket) goes away, with whatever a killed component left in it."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    main = write_component(
        tmp_path / "comp",
        """
        import os, signal
        # What a component killed while writing beside the runner's channel leaves behind.
        folder = os.path.dirname(os.environ["SPLIGHT_RUNNER_CHANNEL"])
        with open(os.path.join(folder, "leftover.tmp"), "w") as f:
            f.write("Running")
        os.kill(os.getpid(), signal.SIGKILL)
        """,
    )
    run = run_component(main, engine_env(dev_engine, TMPDIR=str(scratch)))
    assert run.returncode == 128 + signal.SIGKILL
    assert dev_engine.statuses == [("C1", "Failed")]
    assert list(scratch.iterdir()) == []


def test_a_symlinked_main_runs_in_its_real_folder(dev_engine, tmp_path):
    main = write_component(tmp_path / "real", "import os\nprint(os.getcwd())\n")
    (tmp_path / "links").mkdir()
    link = tmp_path / "links" / "main.py"
    link.symlink_to(main)
    run = run_component(link, engine_env(dev_engine))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(main.parent.resolve())
