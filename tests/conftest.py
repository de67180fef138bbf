"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from splight_runner.dev_engine.server import DevEngine


@pytest.fixture
def dev_engine() -> Iterator[DevEngine]:
    """A started DevEngine on a free port of 127.0.0.1 (credentials dev-access / dev-secret)."""
    with DevEngine() as engine:
        yield engine
