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
