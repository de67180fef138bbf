"""Under ``opentelemetry-instrument`` (no runner) the process says what it can of its own end."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support import engine_env, instrument, write_component

pytestmark = pytest.mark.component_facing


def _instrument(main: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return instrument(main, {**env, "COMPONENT_ID": "C1"})


@pytest.mark.parametrize(
    ("code", "exit_call", "message", "attached"),
    [
        (1, 'sys.exit("configuration file /etc/x.yaml is missing")', "The component exited with code 1.", True),
        (3, "sys.exit(3)", "The component exited with code 3.", False),
    ],
)
def test_the_exit_code_and_systemexit_text_reach_the_engine(code, exit_call, message, attached, dev_engine, tmp_path):
    main = write_component(
        tmp_path / "app", f"import logging, sys\nlogging.getLogger('app').warning('up')\n{exit_call}\n"
    )

    done = _instrument(main, engine_env(dev_engine))

    assert done.returncode == code, done.stderr
    up, ending = dev_engine.records
    assert up["message"] == "up"
    assert ending["name"] == "splight_runner" and ending["loglevel"] == "ERROR"
    assert ending["message"].startswith(message)
    if attached:
        assert ending["traceback"] == "configuration file /etc/x.yaml is missing"
    else:
        assert ending["traceback"] == ""
    assert dev_engine.statuses == [("C1", "Failed")]


def test_a_clean_exit_sends_no_such_record(dev_engine, tmp_path):
    main = write_component(tmp_path / "app", "import logging\nlogging.getLogger('app').warning('up')\n")

    done = _instrument(main, engine_env(dev_engine))

    assert done.returncode == 0, done.stderr
    assert [r["message"] for r in dev_engine.records] == ["up"]
    assert dev_engine.statuses == [("C1", "Succeeded")]
