"""The runner in an environment of its own, the component in another with whatever it pins.

Real venvs, real packages from the index: a component that pins ``protobuf==3.20.3``
and ``opentelemetry-sdk==1.27.0`` (pins pip refuses next to this runner in one
environment) runs under a runner from another venv, sees its own versions, and
every record arrives with its span ids.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from splight_runner.bootstrap.splight_capture import wire
from support import RUNNER, by_message, engine_env, run_component, write_component

pytestmark = pytest.mark.slow  # once, from the runner of .venv: it is about the component's interpreters

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "splight-runner" / "test-venvs"


def venv_with(*requirements: str, python: str = sys.executable) -> Path:
    """A venv of ``python`` with exactly ``requirements`` (and their dependencies); made once, then reused."""
    key = hashlib.sha256("\n".join([python, *requirements]).encode()).hexdigest()[:16]
    folder = CACHE / key
    ready = folder / ".ready"
    if not ready.exists():
        subprocess.run([python, "-m", "venv", "--clear", str(folder)], check=True, capture_output=True, timeout=300)
        subprocess.run(
            [str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet", *requirements],
            check=True,
            capture_output=True,
            timeout=900,
        )
        ready.touch()
    return folder / "bin" / "python"


PINNED = """
    import logging, sys
    import google.protobuf
    from opentelemetry import trace
    from opentelemetry._logs import get_logger
    from opentelemetry.version import __version__ as otel_version

    logging.basicConfig(level=logging.INFO)
    log = logging.getLogger("pinned")
    log.info("versions protobuf=%s opentelemetry=%s", google.protobuf.__version__, otel_version)
    log.info("runner importable: %s", any(m.startswith("splight_runner") for m in sys.modules))
    with trace.get_tracer("pinned").start_as_current_span("work") as span:
        ids = span.get_span_context()
        log.info("inside the span")
        get_logger("pinned.otel").emit(body="through the Logs API") if hasattr(get_logger("x"), "emit") else None
    print("%032x %016x" % (ids.trace_id, ids.span_id), flush=True)
"""


def test_a_component_with_its_own_pins_runs_under_a_runner_from_another_venv(dev_engine, tmp_path):
    python = venv_with("protobuf==3.20.3", "opentelemetry-sdk==1.27.0")
    main = write_component(tmp_path / "app", PINNED)

    run = run_component(main, engine_env(dev_engine, SPLIGHT_RUNNER_PYTHON=str(python)), timeout=120)

    assert run.returncode == 0, run.stderr
    trace_id, span_id = run.stdout.split()
    got = by_message(dev_engine.records)
    assert "versions protobuf=3.20.3 opentelemetry=1.27.0" in got
    assert "runner importable: False" in got
    assert int(trace_id, 16) != 0
    assert (got["inside the span"]["trace_id"], got["inside the span"]["span_id"]) == (trace_id, span_id)
    assert "trace_id" not in got["versions protobuf=3.20.3 opentelemetry=1.27.0"]
    assert got["through the Logs API"]["trace_id"] == trace_id
    assert dev_engine.statuses == [("C1", "Succeeded")]


API_ONLY = """
    import logging
    from opentelemetry import trace
    from opentelemetry._logs import get_logger

    logging.basicConfig(level=logging.INFO)
    with trace.get_tracer("api-only").start_as_current_span("work"):
        logging.getLogger("api").info("inside a span of the API alone")
    get_logger("api.otel").emit(__import__("opentelemetry._logs", fromlist=["LogRecord"]).LogRecord(body="old API"))
"""


def test_with_the_api_alone_records_carry_no_span_ids_and_the_logs_api_still_ships(dev_engine, tmp_path):
    python = venv_with("opentelemetry-api==1.20.0")
    main = write_component(tmp_path / "app", API_ONLY)

    run = run_component(main, engine_env(dev_engine, SPLIGHT_RUNNER_PYTHON=str(python)), timeout=120)

    assert run.returncode == 0, run.stderr
    got = by_message(dev_engine.records)
    assert "trace_id" not in got["inside a span of the API alone"]
    assert "old API" in got
    assert dev_engine.statuses == [("C1", "Succeeded")]


def test_spans_asked_for_without_the_sdk_are_one_line_and_records_still_ship(dev_engine, tmp_path):
    python = venv_with("opentelemetry-api==1.20.0")
    main = write_component(tmp_path / "app", "import logging\nlogging.getLogger('x').warning('still shipped')\n")

    run = run_component(
        main, engine_env(dev_engine, SPLIGHT_RUNNER_PYTHON=str(python), OTEL_TRACES_EXPORTER="console"), timeout=120
    )

    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("splight-runner:")]
    assert lines == [
        "splight-runner: spans are not exported: the component's environment has no opentelemetry-sdk "
        "(install it there to export spans); log records still ship"
    ]
    assert "still shipped" in by_message(dev_engine.records)


SPLIGHT_LIB_MINORS = ("3.10", "3.11", "3.12")
COMPONENTS = Path(__file__).resolve().parents[1] / "components"


@pytest.mark.splight_lib
@pytest.mark.parametrize("minor", SPLIGHT_LIB_MINORS)
@pytest.mark.parametrize(
    ("component", "code", "statuses", "logged"),
    [
        ("splight_finishing", 0, ["Running", "Stopped"], "run 1"),
        ("splight_failing_task", 1, ["Running", "Failed"], "working"),
    ],
)
def test_splight_lib_statuses_from_a_venv_that_has_no_runner(
    minor, component, code, statuses, logged, dev_engine, tmp_path
):
    from support import find_cpython

    base = find_cpython(minor)
    if base is None:
        pytest.skip(f"no CPython {minor} on this machine")
    python = venv_with("splight-lib>=5", python=base)
    # splight-lib writes ~/.splight/config on import and logs to a file: both in tmp.
    env = engine_env(
        dev_engine,
        SPLIGHT_RUNNER_PYTHON=str(python),
        HOME=str(tmp_path),
        SPLIGHT_COMPONENT_LOG_FILE=str(tmp_path / "components.log"),
    )

    run = run_component(COMPONENTS / component / "main.py", env, timeout=180)

    assert run.returncode == code, run.stderr
    assert dev_engine.statuses == [("C1", status) for status in statuses]
    assert logged in [record["message"] for record in dev_engine.records]


def test_a_component_side_of_another_channel_format_is_one_line_never_a_misread(dev_engine, tmp_path):
    """Another splight-runner's bootstrap (a newer format) connects: named in one line, nothing read from it."""
    main = write_component(
        tmp_path / "app",
        f"""
        import logging, os, socket, struct
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(os.environ["SPLIGHT_RUNNER_CHANNEL"])
        sock.sendall(struct.pack("<4sHH", {wire.MAGIC!r}, {wire.VERSION + 1}, 0) + b"\\x10\\x00\\x00\\x00" + b"x" * 16)
        sock.close()
        logging.getLogger("app").warning("from this runner's own bootstrap")
        """,
    )

    run = run_component(main, engine_env(dev_engine))

    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("splight-runner:")]
    assert lines == [
        "splight-runner: a component process connected but its records are not read: "
        f"it speaks channel format {wire.VERSION + 1}, this runner reads format {wire.VERSION}"
    ]
    assert [r["message"] for r in dev_engine.records] == ["from this runner's own bootstrap"]


def test_a_python_that_does_not_exist_is_one_line_and_exit_2(dev_engine, tmp_path):
    main = write_component(tmp_path / "app", "print('never runs')\n")
    for option in (["--python", str(tmp_path / "nope")], []):
        env = engine_env(dev_engine, SPLIGHT_RUNNER_PYTHON="python-that-is-not-there")
        done = subprocess.run(
            [*RUNNER, "run-component", str(main), "--component-id=C1", *option],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1, done.stderr
        assert "never runs" not in done.stdout
