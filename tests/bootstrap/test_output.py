"""Output as records, on request: prints arrive once, logging records once, progress bars collapsed."""

from __future__ import annotations

import pytest

from support import engine_env, run_component, write_component

pytestmark = pytest.mark.component_facing

APP = """
    import logging, sys, warnings
    logging.basicConfig(level=logging.INFO)          # a handler on stderr: its lines are records already
    print("hello from print")
    logging.getLogger("app").info("a logging record")
    for step in range(10_000):
        sys.stdout.write("\\rprogress %d%%" % (step // 100))
    sys.stdout.write("\\n")
    print("x" * 20_000)
    print("to stderr", file=sys.stderr)
    sys.stdout.write("windows line\\r\\n")
    sys.stdout.write("no newline at the end")
"""


def test_each_line_outside_logging_becomes_one_record(dev_engine, tmp_path):
    main = write_component(tmp_path / "app", APP)

    run = run_component(main, engine_env(dev_engine, SPLIGHT_RUNNER_CAPTURE_OUTPUT="true"))

    assert run.returncode == 0, run.stderr
    got = [(r["name"], r["loglevel"], r["message"]) for r in dev_engine.records]
    long_line = "x" * 8192 + " … (line cut at 8192 characters)"
    assert got == [
        ("stdout", "INFO", "hello from print"),
        ("app", "INFO", "a logging record"),  # once: not again as the handler's stderr line
        ("stdout", "INFO", "progress 99%"),  # 10,000 carriage returns, one record
        ("stdout", "INFO", long_line),
        ("stderr", "ERROR", "to stderr"),
        ("stdout", "INFO", "windows line"),
        ("stdout", "INFO", "no newline at the end"),
    ]
    # The streams themselves are unchanged.
    assert run.stdout.count("progress") == 10_000 and run.stdout.endswith("no newline at the end")
    assert "INFO:app:a logging record" in run.stderr


def test_off_by_default(dev_engine, tmp_path):
    main = write_component(tmp_path / "app", APP)

    run = run_component(main, engine_env(dev_engine))

    assert run.returncode == 0, run.stderr
    assert [r["message"] for r in dev_engine.records] == ["a logging record"]
