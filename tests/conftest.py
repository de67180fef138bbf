"""Shared fixtures."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from splight_runner.dev_engine.server import DevEngine

# A suite started in the background by a script (``cmd &`` without job control, ``nohup``) inherits
# SIGINT and SIGQUIT ignored, and every runner and component it starts would too: the runner keeps a
# signal that was ignored when it started ignored, as ``nohup`` asks. The tests that send them speak
# of a terminal's Ctrl-C, so the suite starts its processes with the default dispositions.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGQUIT) == signal.SIG_IGN:
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


@pytest.fixture
def dev_engine() -> Iterator[DevEngine]:
    """A started DevEngine on a free port of 127.0.0.1 (credentials dev-access / dev-secret)."""
    with DevEngine() as engine:
        yield engine


#: Proxy variables a machine running the tests may have set (each also in lower case).
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def direct_to_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variable of the machine running the tests applies: calls to 127.0.0.1 go straight there."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
