"""settings: the OTEL_BLRP_* values read once into typed settings, and the on/off switches."""

from __future__ import annotations

import pytest

from splight_runner import settings
from splight_runner.settings import ConfigError, DeliverySettings, delivery_settings, flag


def test_delivery_settings_defaults() -> None:
    delivery = delivery_settings({})
    assert delivery == DeliverySettings(
        max_queue_size=settings.DEFAULT_MAX_QUEUE_SIZE,
        schedule_delay_ms=settings.DEFAULT_SCHEDULE_DELAY_MS,
        max_export_batch_size=settings.DEFAULT_MAX_EXPORT_BATCH_SIZE,
        export_timeout_ms=settings.DEFAULT_EXPORT_TIMEOUT_MS,
    )
    assert delivery.export_timeout == settings.DEFAULT_EXPORT_TIMEOUT_MS / 1000


def test_delivery_settings_read_every_variable() -> None:
    env = {
        "OTEL_BLRP_MAX_QUEUE_SIZE": "100",
        "OTEL_BLRP_SCHEDULE_DELAY": " 50 ",
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "10",
        "OTEL_BLRP_EXPORT_TIMEOUT": "2500",
        "OTEL_BLRP_UNRELATED": "x",
    }
    assert delivery_settings(env) == DeliverySettings(100, 50, 10, 2500)
    assert delivery_settings(env).export_timeout == 2.5


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("OTEL_BLRP_MAX_QUEUE_SIZE", "lots", "OTEL_BLRP_MAX_QUEUE_SIZE: 'lots' is not an integer"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "0", "OTEL_BLRP_SCHEDULE_DELAY: 0 is below the minimum 1"),
        ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "-3", "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE: -3 is below the minimum 1"),
        ("OTEL_BLRP_EXPORT_TIMEOUT", "1.5", "OTEL_BLRP_EXPORT_TIMEOUT: '1.5' is not an integer"),
    ],
)
def test_delivery_settings_name_the_bad_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        delivery_settings({name: value})
    assert str(raised.value) == message


def test_an_empty_value_means_the_default() -> None:
    assert delivery_settings({"OTEL_BLRP_MAX_QUEUE_SIZE": "  "}).max_queue_size == settings.DEFAULT_MAX_QUEUE_SIZE


@pytest.mark.parametrize(("value", "expected"), [("true", True), (" TRUE ", True), ("1", False), ("", False)])
def test_flag_is_on_only_for_true(value: str, expected: bool) -> None:
    assert flag("SWITCH", {"SWITCH": value}) is expected
    assert flag("SWITCH", {}) is False


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["main.py", "--component-id", "C9"], "C9"),
        (["main.py", "--component-id=C9", "--other"], "C9"),
        (["main.py", "--verbose", "--component-id", "C9", "--component-id=later"], "C9"),
        (["main.py", "--", "--component-id=C9"], None),
        (["main.py", "--component-id"], None),
        (["main.py", "--component-id="], None),
        (["--component-id=C9"], None),  # argv[0] is the program
        (["main.py"], None),
    ],
)
def test_process_id_from_the_components_own_argument(argv: list[str], expected: str | None) -> None:
    assert settings.process_id({}, argv) == expected


def test_a_process_id_variable_wins_over_the_argument() -> None:
    argv = ["main.py", "--component-id=FROM-ARG"]
    assert settings.process_id({"AGENT_ID": "FROM-ENV"}, argv) == "FROM-ENV"
    assert settings.process_id({"SPLIGHT_RUNNER_SECRETS_DIR": "/nonexistent"}, argv) == "FROM-ARG"
    assert settings.process_id({}) is None  # no command line given: the variables only


def test_a_malformed_argument_id_names_the_option() -> None:
    with pytest.raises(ConfigError, match=r"^--component-id: 'a b' is not a valid id$"):
        settings.process_id({}, ["main.py", "--component-id", "a b"])


def test_checked_exporters_leave_out_and_name_what_is_not_installed() -> None:
    asked: list[str] = []

    def installed(group: str) -> set[str]:
        asked.append(group)
        return {"mine"}

    env = {"OTEL_LOGS_EXPORTER": "splight, mine,bogus,splight,other"}
    chosen, problem = settings.checked_exporters("OTEL_LOGS_EXPORTER", "splight", installed, env)
    assert chosen == ["splight", "mine"]
    assert problem == (
        "OTEL_LOGS_EXPORTER: no log exporter named 'bogus', 'other' "
        "(splight, otlp, console, none, or an installed opentelemetry_logs_exporter)"
    )
    assert set(asked) == {"opentelemetry_logs_exporter"}
    asked.clear()
    assert settings.checked_exporters("OTEL_TRACES_EXPORTER", "none", installed, {}) == ([], None)
    assert settings.checked_exporters(
        "OTEL_METRICS_EXPORTER", "none", installed, {"OTEL_METRICS_EXPORTER": "otlp"}
    ) == (
        ["otlp"],
        None,
    )
    assert asked == []  # built-in names need no look-up


@pytest.mark.parametrize(("value", "expected"), [("", False), ("all", False), (" Historical ", True)])
def test_historical_record_fields(value: str, expected: bool) -> None:
    assert settings.historical_record_fields({"SPLIGHT_RUNNER_RECORD_FIELDS": value}) is expected
    assert settings.historical_record_fields({}) is False


def test_historical_record_fields_names_a_bad_value() -> None:
    with pytest.raises(ConfigError, match="SPLIGHT_RUNNER_RECORD_FIELDS: 'some' is not 'all' or 'historical'"):
        settings.historical_record_fields({"SPLIGHT_RUNNER_RECORD_FIELDS": "some"})
