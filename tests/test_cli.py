"""CLI: clear one-line errors (exit 2), no tracebacks, and version/help with no environment at all."""

from __future__ import annotations

import os
import subprocess

import pytest

from support import RUNNER, SECRET_KEY, engine_env, write_component

pytestmark = pytest.mark.component_facing


def _cli(*args: str, env: dict[str, str] | None = None, cwd=None) -> subprocess.CompletedProcess[str]:
    if env is not None and "PYTHONPATH" in os.environ:
        env = {"PYTHONPATH": os.environ["PYTHONPATH"], **env}  # the tree under test, even in an empty environment
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


COMMANDS_WITH_OPTIONS = ["run-component", "run", "run-agent", "gateway", "dev-engine", "check"]


def _options_without_text(help_text: str) -> list[str]:
    """Option and argument entries of argparse's help that have no explanation after them."""
    lines = help_text.splitlines()
    bare = []
    for index, line in enumerate(lines):
        if not line.startswith("  ") or line.startswith("   "):
            continue  # entries are indented by two; their wrapped explanations by more
        entry, _, text = line.strip().partition("  ")
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if not text.strip() and not following.startswith("   "):
            bare.append(entry)
    return bare


@pytest.mark.parametrize("command", COMMANDS_WITH_OPTIONS)
def test_help_command_and_command_help_print_that_commands_help_with_every_option_explained(command):
    via_help = _cli("help", command, env={})
    via_option = _cli(command, "--help", env={})
    assert via_help.returncode == via_option.returncode == 0, via_help.stderr + via_option.stderr
    assert via_help.stderr == via_option.stderr == ""
    assert via_help.stdout == via_option.stdout
    assert via_help.stdout.startswith(f"usage: splight-runner {command}")
    assert "options:" in via_help.stdout and "--help" in via_help.stdout
    assert _options_without_text(via_help.stdout) == []


def test_run_component_help_explains_the_component_id():
    done = _cli("run-component", "--help", env={})
    line = next(line for line in done.stdout.splitlines() if line.startswith("  --component-id"))
    assert "the component's id" in line


def test_help_of_an_unknown_command_is_a_usage_error():
    _assert_one_line_error(_cli("help", "frobnicate", env={}), "frobnicate")


def test_a_folder_as_the_component_path_is_named_as_a_folder(tmp_path):
    (tmp_path / "comp").mkdir()
    _assert_one_line_error(_cli("run-component", str(tmp_path / "comp"), "--component-id=C1", env={}), "is a folder")


def test_a_file_that_is_not_python_is_named(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not python\n")
    _assert_one_line_error(
        _cli("run-component", str(notes), "--component-id=C1", env={}), "notes.txt is not a Python file"
    )


def test_run_agent_without_splight_agent_says_it_is_not_installed(tmp_path):
    done = _cli("run-agent", env={"PATH": str(tmp_path)})
    _assert_one_line_error(done, "splight-agent is not installed", "pip install splight-agent")


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("OTEL_LOGS_EXPORTER", "bogus", "no log exporter named 'bogus'"),
        ("OTEL_LOGS_EXPORTER", "splight, bogus,otlp", "no log exporter named 'bogus'"),
        ("OTEL_TRACES_EXPORTER", "zipkin-nowhere", "no span exporter named 'zipkin-nowhere'"),
        ("OTEL_METRICS_EXPORTER", "nope", "no metric exporter named 'nope'"),
        ("SPLIGHT_RUNNER_RECORD_FIELDS", "some", "'some' is not 'all' or 'historical'"),
        ("SPLIGHT_RUNNER_STOP_GRACE", "soon", "SPLIGHT_RUNNER_STOP_GRACE"),
    ],
)
@pytest.mark.parametrize("command", ["run-component", "check"])
def test_every_configuration_mistake_is_one_line_and_exit_2(dev_engine, tmp_path, command, variable, value, named):
    main = write_component(tmp_path, "print('must not run')\n")
    env = engine_env(dev_engine, **{variable: value})
    args = [str(main), "--component-id=C1"] if command == "run-component" else []
    _assert_one_line_error(_cli(command, *args, env=env), variable, named)


def test_check_lists_the_installed_distros(dev_engine):
    done = _cli("check", env=engine_env(dev_engine, COMPONENT_ID="C1"))
    assert done.returncode == 0, done.stderr
    assert "splight (splight-runner " in done.stdout
    assert "opentelemetry-instrument loads: distro 'splight', configurator 'splight'" in done.stdout


@pytest.mark.parametrize("fields", ["all", "historical"])
def test_check_write_test_record_posts_one_labelled_record(dev_engine, fields):
    env = engine_env(dev_engine, COMPONENT_ID="C1", SPLIGHT_RUNNER_RECORD_FIELDS=fields)
    done = _cli("check", "--write-test-record", env=env)
    assert done.returncode == 0, done.stderr
    assert len(dev_engine.records) == 1
    record = dev_engine.records[0]
    assert record["message"] == "splight-runner check: test record, safe to ignore"
    assert record["name"] == "splight_runner.check"
    assert (record["id"], record["sender_type"], record["loglevel"]) == ("C1", "component", "INFO")
    eight = ["sender_type", "id", "name", "message", "loglevel", "filename", "traceback", "tags"]
    assert list(record) == (eight if fields == "historical" else [*eight, "timestamp"])
    assert f"the Engine took its fields: {', '.join(record)}" in done.stdout


def test_check_write_test_record_needs_a_process_id(dev_engine):
    _assert_one_line_error(_cli("check", "--write-test-record", env=engine_env(dev_engine)), "COMPONENT_ID")
    assert dev_engine.records == []


def test_check_write_test_record_reports_a_refusal(dev_engine):
    dev_engine.fail_next(1, 400)
    done = _cli("check", "--write-test-record", env=engine_env(dev_engine, COMPONENT_ID="C1"))
    assert done.returncode == 1
    assert "refused the test record" in done.stderr


def test_gateway_sends_only_the_historical_fields_when_asked(dev_engine):
    import json
    import re
    import signal
    import urllib.request

    env = engine_env(dev_engine, SPLIGHT_RUNNER_RECORD_FIELDS="historical")
    process = subprocess.Popen(
        [*RUNNER, "gateway", "--listen", "127.0.0.1:0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = re.search(r"listening on http://127\.0\.0\.1:(\d+)", process.stdout.readline())
        assert port is not None
        record = {
            "timeUnixNano": "1700000000000000000",
            "severityNumber": 9,
            "body": {"stringValue": "via the gateway"},
            "traceId": "0af7651916cd43dd8448eb211c80319c",
            "spanId": "b7ad6b7169203331",
        }
        component = {"key": "splight.component.id", "value": {"stringValue": "C1"}}
        body = {
            "resourceLogs": [
                {
                    "resource": {"attributes": [component]},
                    "scopeLogs": [{"scope": {"name": "app"}, "logRecords": [record]}],
                }
            ]
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{port.group(1)}/v1/logs",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=20) as answer:
            assert answer.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=15)
    assert [list(r) for r in dev_engine.records] == [
        ["sender_type", "id", "name", "message", "loglevel", "filename", "traceback", "tags"]
    ]
    assert dev_engine.records[0]["message"] == "via the gateway"
