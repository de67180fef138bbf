"""CLI: clear one-line errors (exit 2), no tracebacks, and version/help with no environment at all."""

from __future__ import annotations

import subprocess

import pytest

from support import RUNNER, SECRET_KEY, engine_env, write_component

pytestmark = pytest.mark.component_facing


def _cli(*args: str, env: dict[str, str] | None = None, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RUNNER, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args", [["version"], ["--version"]])
def test_version_needs_no_environment(args):
    done = _cli(*args, env={})
    assert done.returncode == 0
    assert done.stdout.startswith("splight-runner ")
    assert done.stderr == ""


@pytest.mark.parametrize("args", [["help"], ["--help"]])
def test_help_needs_no_environment_and_lists_every_command(args):
    done = _cli(*args, env={})
    assert done.returncode == 0
    for command in ("run-component", "run ", "run-agent", "gateway", "dev-engine", "check", "version"):
        assert command in done.stdout


def _assert_one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in done.stderr


def test_missing_credentials_name_the_variables(dev_engine, tmp_path):
    main = write_component(tmp_path, "print('must not run')\n")
    env = engine_env(dev_engine)
    del env["SPLIGHT_ACCESS_ID"], env["SPLIGHT_SECRET_KEY"]
    _assert_one_line_error(
        _cli("run-component", str(main), "--component-id=C1", env=env), "SPLIGHT_ACCESS_ID", "SPLIGHT_SECRET_KEY"
    )


def test_malformed_host_is_named(dev_engine, tmp_path):
    main = write_component(tmp_path, "print('must not run')\n")
    env = engine_env(dev_engine, SPLIGHT_PLATFORM_API_HOST="ftp//nowhere")
    _assert_one_line_error(_cli("run-component", str(main), "--component-id=C1", env=env), "SPLIGHT_PLATFORM_API_HOST")


def test_missing_component_id_is_named(dev_engine, tmp_path):
    main = write_component(tmp_path, "print('must not run')\n")
    _assert_one_line_error(
        _cli("run-component", str(main), env=engine_env(dev_engine)), "--component-id", "COMPONENT_ID"
    )


def test_component_id_may_come_from_the_environment(dev_engine, tmp_path):
    main = write_component(tmp_path, "import sys\nprint(sys.argv[1:])\n")
    done = _cli("run-component", str(main), env=engine_env(dev_engine, COMPUTE_NODE_ID="N7"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "['--component-id', 'N7']\n"


def test_missing_main_file_is_named(dev_engine, tmp_path):
    _assert_one_line_error(
        _cli("run-component", str(tmp_path / "nope.py"), "--component-id=C1", env=engine_env(dev_engine)), "nope.py"
    )


def test_malformed_queue_size_is_named(dev_engine, tmp_path):
    main = write_component(tmp_path, "print('must not run')\n")
    env = engine_env(dev_engine, OTEL_BLRP_MAX_QUEUE_SIZE="lots")
    _assert_one_line_error(_cli("run-component", str(main), "--component-id=C1", env=env), "OTEL_BLRP_MAX_QUEUE_SIZE")


def test_unknown_command_and_bad_option_are_usage_errors(tmp_path):
    _assert_one_line_error(_cli("frobnicate", env={}), "frobnicate")
    main = write_component(tmp_path, "print('must not run')\n")
    _assert_one_line_error(_cli("run-component", str(main), "--bogus", env={}), "run-component", "--bogus")


def test_secrets_file_wins_over_the_variable(dev_engine, tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "SPLIGHT_SECRET_KEY").write_text(SECRET_KEY + "\n")
    main = write_component(tmp_path / "c", "import logging\nlogging.getLogger('a').warning('via file')\n")
    env = engine_env(dev_engine, SPLIGHT_SECRET_KEY="wrong-key", SPLIGHT_RUNNER_SECRETS_DIR=str(secrets))
    done = _cli("run-component", str(main), "--component-id=C1", env=env)
    assert done.returncode == 0, done.stderr
    assert dev_engine.wait_for(lambda e: len(e.records) >= 1)
    assert dev_engine.records[0]["message"] == "via file"


def test_console_exporter_needs_no_credentials_and_prints_records(tmp_path):
    main = write_component(tmp_path, "import logging\nlogging.getLogger('a').warning('to the console')\n")
    env = {"PATH": "/usr/bin:/bin", "OTEL_LOGS_EXPORTER": "console"}
    done = _cli("run-component", str(main), "--component-id=C1", env=env)
    assert done.returncode == 0, done.stderr
    assert '"body": "to the console"' in done.stdout
    assert "splight.component.id" in done.stdout


def test_check_reports_a_working_configuration(dev_engine):
    done = _cli("check", env=engine_env(dev_engine, COMPONENT_ID="C1"))
    assert done.returncode == 0, done.stderr
    assert "credentials accepted" in done.stdout
    assert "C1" in done.stdout
    assert SECRET_KEY not in done.stdout + done.stderr


def test_check_reports_rejected_credentials_without_printing_the_key(dev_engine):
    done = _cli("check", env=engine_env(dev_engine, SPLIGHT_SECRET_KEY="not-the-key-123"))
    assert done.returncode == 1
    assert "rejected the credentials" in done.stderr
    assert "not-the-key-123" not in done.stdout + done.stderr


def test_check_reports_an_unreachable_engine(dev_engine):
    env = engine_env(dev_engine, SPLIGHT_PLATFORM_API_HOST="http://127.0.0.1:9")
    done = _cli("check", env=env)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr


def test_python_dash_m_splight_runner_is_the_cli():
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "splight_runner", "version"], env={}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert done.stdout == _cli("version", env={}).stdout
