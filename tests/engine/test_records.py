"""engine.records: the rules every side shares (final status, level names, timestamps, health events)."""

from __future__ import annotations

import pytest

from splight_runner.engine.records import STATUS_EVENT_NAME, final_status, loglevel, rfc3339, status_of


@pytest.mark.parametrize(
    ("exit_code", "stopped", "status"),
    [(0, False, "Succeeded"), (3, False, "Failed"), (-9, False, "Failed"), (0, True, "Stopped"), (1, True, "Stopped")],
)
def test_final_status(exit_code: int, stopped: bool, status: str) -> None:
    assert final_status(exit_code, stopped) == status


@pytest.mark.parametrize(
    ("number", "text", "level"),
    [
        (9, None, "INFO"),
        (13, "WARN", "WARNING"),
        (21, None, "CRITICAL"),
        (None, "error2", "ERROR"),
        (None, None, "INFO"),
    ],
)
def test_loglevel(number: int | None, text: str | None, level: str) -> None:
    assert loglevel(number, text) == level


def test_rfc3339_is_utc_with_microseconds() -> None:
    assert rfc3339(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456Z"


def test_status_of_reads_health_events_only() -> None:
    assert status_of(STATUS_EVENT_NAME, "Running", {}) == "Running"
    assert status_of(None, "Running", {"splight.component.status": "Failed"}) == "Failed"
    assert status_of(None, "Running", {}) is None
    assert status_of(STATUS_EVENT_NAME, "Unknown", {}) is None
