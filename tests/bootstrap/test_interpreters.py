"""The component side in every CPython 3.8-3.13, with nothing installed in it, under a runner on another one."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support import (
    COMPONENT_PYTHONS,
    RUNNER,
    bare_venv,
    by_message,
    engine_env,
    find_cpython,
    run_component,
    write_component,
)

pytestmark = pytest.mark.component_facing

COMPONENT = """
    import logging, multiprocessing, os, subprocess, sys
    logging.basicConfig(level=logging.INFO)
    log = logging.getLogger("app")

    def work(n):
        logging.getLogger("worker").info("worker %d on %d.%d", n, *sys.version_info[:2])
        return n

    if __name__ == "__main__":
        log.info("started on %d.%d", *sys.version_info[:2])
        log.info("own path only: %s", not any("splight_runner" in entry for entry in sys.path))
        log.warning("tagged", extra={"tags": {"asset": "a1"}})
        with multiprocessing.get_context("spawn").Pool(2) as pool:
            pool.map(work, [1, 2])
        subprocess.run([sys.executable, "-c", "import logging; logging.getLogger('child').warning('from a child')"])
        if len(sys.argv) > 3 and sys.argv[3] == "exit":
            sys.exit("configuration is missing")
        raise RuntimeError("the end")
"""


def _interpreter(minor: str, tmp_path: Path) -> Path:
    python = find_cpython(minor)
    if python is None:
        pytest.skip(f"no CPython {minor} on this machine (pyenv or python{minor} on PATH)")
    return bare_venv(python, tmp_path / f"venv-{minor}")


@pytest.mark.parametrize("minor", COMPONENT_PYTHONS)
def test_a_component_on_any_cpython_ships_everything(minor, dev_engine, tmp_path):
    python = _interpreter(minor, tmp_path)
    main = write_component(tmp_path / "app", COMPONENT)
    env = engine_env(dev_engine, SPLIGHT_RUNNER_PYTHON=str(python))

    run = run_component(main, env)

    assert run.returncode == 1, run.stderr
    assert "splight-runner" not in run.stderr, run.stderr  # nothing to say: it all worked
    got = by_message(dev_engine.records)
    assert got[f"started on {minor}"]["loglevel"] == "INFO"
    assert got["own path only: True"]
    assert got["tagged"]["tags"] == {"asset": "a1"}
    assert {f"worker 1 on {minor}", f"worker 2 on {minor}", "from a child"} <= set(got)
    [uncaught] = [r for r in dev_engine.records if r["loglevel"] == "CRITICAL"]
    assert "RuntimeError: the end" in uncaught["traceback"]
    assert dev_engine.statuses == [("C1", "Failed")]


@pytest.mark.parametrize("minor", ["3.8", "3.13"])
def test_python_names_the_interpreter_and_the_exit_passes_through(minor, dev_engine, tmp_path):
    python = _interpreter(minor, tmp_path)
    main = write_component(tmp_path / "app", COMPONENT)
    env = engine_env(dev_engine)

    done = subprocess.run(
        [*RUNNER, "run-component", str(main), "--component-id=C1", "--python", str(python), "--", "exit"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )

    assert done.returncode == 1
    assert "configuration is missing" in done.stderr
    assert f"started on {minor}" in by_message(dev_engine.records)
    assert dev_engine.statuses == [("C1", "Failed")]


ENDINGS = """
    import logging, os, signal, sys, time
    logging.basicConfig(level=logging.INFO)
    log = logging.getLogger("app")
    log.info("last words on %d.%d", *sys.version_info[:2])
    how = sys.argv[3]
    if how == "os._exit":
        os._exit(3)
    if how == "sigterm":
        print("ready", flush=True)
        time.sleep(30)
"""


@pytest.mark.parametrize("minor", ["3.8", "3.9"])
@pytest.mark.parametrize(("how", "code", "status"), [("os._exit", 3, "Failed"), ("sigterm", 143, "Stopped")])
def test_every_exit_path_hands_over_on_the_oldest_cpythons(minor, how, code, status, dev_engine, tmp_path):
    import signal

    python = _interpreter(minor, tmp_path)
    main = write_component(tmp_path / "app", ENDINGS)
    runner = subprocess.Popen(
        [*RUNNER, "run-component", str(main), "--component-id=C1", "--python", str(python), "--", how],
        env=engine_env(dev_engine),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if how == "sigterm":
        assert runner.stdout.readline().strip() == "ready"
        runner.send_signal(signal.SIGTERM)
    _, err = runner.communicate(timeout=60)

    assert runner.returncode == code, err
    assert f"last words on {minor}" in by_message(dev_engine.records)
    assert dev_engine.statuses == [("C1", status)]


def test_an_interpreter_the_bootstrap_does_not_capture_in_is_one_line(dev_engine, tmp_path):
    """CPython 3.7 (where the machine has one): the component runs, unshipped, and says so once."""
    python = find_cpython("3.7")
    if python is None:
        pytest.skip("no CPython 3.7 on this machine")
    main = write_component(tmp_path / "app", "print('ran on 3.7')\n")

    run = run_component(main, engine_env(dev_engine, SPLIGHT_RUNNER_PYTHON=python))

    assert run.returncode == 0 and run.stdout == "ran on 3.7\n"
    said = [line for line in run.stderr.splitlines() if line.startswith("splight-runner:")]
    assert said[0].startswith("splight-runner: this interpreter (cpython 3.7.")
    assert said[0].endswith(
        "is not one splight-runner captures in (CPython 3.8 or newer); the component runs unshipped"
    )


@pytest.mark.parametrize(("minor", "loads"), [("3.8", True), ("3.7", False)])
def test_check_says_which_python_and_whether_it_loads_the_bootstrap(minor, loads, dev_engine, tmp_path):
    python = find_cpython(minor)
    if python is None:
        pytest.skip(f"no CPython {minor} on this machine")
    done = subprocess.run(
        [*RUNNER, "check"],
        env=engine_env(dev_engine, SPLIGHT_RUNNER_PYTHON=python),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"Python:       {python} (named by SPLIGHT_RUNNER_PYTHON)" in done.stdout
    if loads:
        assert done.returncode == 0, done.stderr
        assert f"CPython {minor}." in done.stdout and "loads the bootstrap (channel format 1)" in done.stdout
    else:
        assert done.returncode == 1
        assert "the bootstrap captures in CPython 3.8 or newer only" in done.stdout
        assert "the component's Python cannot load the bootstrap" in done.stderr
