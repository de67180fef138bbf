"""engine.records: the rules every side shares (final status, level names, timestamps, health events)."""

from __future__ import annotations

import pytest

from splight_runner.engine.records import (
    STATUS_EVENT_NAME,
    exit_status,
    final_status,
    loglevel,
    platform_status,
    rfc3339,
    sends_status,
    status_of,
)


@pytest.mark.parametrize(
    ("exit_code", "stopped", "status"),
    [(0, False, "Succeeded"), (3, False, "Failed"), (-9, False, "Failed"), (0, True, "Stopped"), (1, True, "Stopped")],
)
def test_exit_status(exit_code: int, stopped: bool, status: str) -> None:
    assert exit_status(exit_code, stopped) == status


@pytest.mark.parametrize(
    ("last", "ending", "sent"),
    [
        (None, "Succeeded", "Succeeded"),
        ("Running", "Succeeded", "Succeeded"),
        ("Succeeded", "Succeeded", None),
        ("Stopped", "Succeeded", None),
        ("Running", "Stopped", "Stopped"),
        ("Failed", "Stopped", None),
        # A component that reported Stopped and then exited 1 ends Failed, as the platform maps exit codes.
        ("Stopped", "Failed", "Failed"),
        ("Succeeded", "Failed", "Failed"),
        ("Failed", "Failed", None),
        ("Running", None, None),
    ],
)
def test_final_status_follows_the_exit_unless_the_last_reported_status_already_says_it(last, ending, sent) -> None:
    assert final_status(last, ending) == sent


def test_engine_states_in_the_platforms_vocabulary() -> None:
    assert [platform_status(s) for s in ("Running", "Stopped", "Failed", "Finished", "Initialized", "Unknown")] == [
        "Running",
        "Stopped",
        "Failed",
        "Succeeded",
        None,
        None,
    ]


def test_only_components_send_statuses() -> None:
    assert sends_status("component") and sends_status(None)
    assert not sends_status("agent")


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


def test_historical_fields_only_leaves_out_timestamp_and_trace_ids() -> None:
    from splight_runner.engine import records

    def make() -> dict:
        return records.engine_record(
            process_id="C1",
            sender_type="component",
            scope_name="app",
            body="hello",
            severity_number=9,
            severity_text="INFO",
            attributes=None,
            timestamp_ns=1,
            trace_id=5,
            span_id=6,
        )

    assert list(make()) == [*records.HISTORICAL_FIELDS, "timestamp", "trace_id", "span_id"]
    records.send_historical_fields_only(True)
    try:
        assert list(make()) == list(records.HISTORICAL_FIELDS)
    finally:
        records.send_historical_fields_only(False)
    assert "timestamp" in make()
