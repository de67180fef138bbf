"""The runner's start-up runs without the garbage collector, and the collector is back once it is over."""

from __future__ import annotations

import gc

import pytest

from splight_runner.supervisor import launch


def test_the_collector_is_back_and_the_start_up_frozen_once_the_pipeline_is_built_or_failed_to() -> None:
    # run-component turns the collector off first thing; whatever the pipeline's build does, a runner
    # that lives for months must collect again afterwards.
    gc.disable()
    try:
        with pytest.raises(AttributeError):
            launch._build_then_collect(None)  # type: ignore[arg-type] - a build that fails
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0  # what the start-up made is out of every later collection's way
    finally:
        gc.unfreeze()
        gc.enable()
