"""The runner's own lines: a line that can repeat is said once in full, then summarised once a minute."""

from __future__ import annotations

import time

import pytest

from splight_runner import diagnostics


@pytest.fixture(autouse=True)
def _fresh_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diagnostics, "_limited", {})
    monkeypatch.setattr(diagnostics, "SUMMARY_INTERVAL", 0.3)


def test_a_repeating_line_is_said_once_then_counted_into_the_next_summary(capsys: pytest.CaptureFixture[str]) -> None:
    for n in range(5):
        diagnostics.say_limited("flap", f"outage {n}")
    time.sleep(0.35)
    diagnostics.say_limited("flap", "outage 5")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "splight-runner: outage 0"
    assert lines[1].startswith("splight-runner: outage 5 (and 4 more like it in the last ")
    assert len(lines) == 2


def test_each_kind_is_limited_on_its_own(capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(3):
        diagnostics.say_limited("started", "cannot deliver")
        diagnostics.say_limited("ended", "delivering again")
    assert capsys.readouterr().err.splitlines() == [
        "splight-runner: cannot deliver",
        "splight-runner: delivering again",
    ]
