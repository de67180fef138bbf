"""Capture: every record of every logger reaches the Engine, and the component does not notice."""

from __future__ import annotations

import pytest

from support import RFC3339_MICROS, by_message, engine_env, run_component, run_plain, write_component

pytestmark = pytest.mark.component_facing


def test_plain_loggers_arrive_with_every_field(dev_engine, tmp_path):
    main = write_component(
        tmp_path,
        """
        import logging
        logging.basicConfig(level=logging.DEBUG)
        log = logging.getLogger("app.module")
        log.debug("debug %s", "one")
        log.info("info %d", 2)
        log.warning("warning")
        log.error("error")
        log.critical("critical")
        logging.getLogger().info("from root")
        """,
    )
    run = run_component(main, engine_env(dev_engine))
    assert run.returncode == 0, run.stderr
    assert dev_engine.wait_for(lambda e: len(e.records) >= 6)
    records = dev_engine.records
    assert [r["message"] for r in records] == ["debug one", "info 2", "warning", "error", "critical", "from root"]
    first = records[0]
    assert set(first) == {
        "sender_type", "id", "name", "message", "loglevel", "filename", "traceback", "tags", "timestamp"
    }  # fmt: skip
    assert first["sender_type"] == "component"
    assert first["id"] == "C1"
    assert first["name"] == "app.module"
    assert first["filename"] == "main.py"
    assert first["traceback"] == ""
    assert first["tags"] is None
    assert RFC3339_MICROS.match(first["timestamp"])
    assert [r["loglevel"] for r in records] == ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "INFO"]
    assert records[-1]["name"] == "root"


def test_unregistered_non_propagating_logger_with_tags_is_captured(dev_engine, tmp_path):
    # This is how splight-lib builds every logger: outside the manager's tree, propagate=False.
    main = write_component(
        tmp_path,
        """
        import logging
        logger = logging.Logger("splight_lib.component", logging.DEBUG)
        logger.propagate = False
        logger.info("with string tags", extra={"tags": "RUNTIME"})
        logger.info("with list tags", extra={"tags": ["a", "b"]})
        logger.warning("without tags")
        assert "splight_lib.component" not in logging.Logger.manager.loggerDict
        """,
    )
    run = run_component(main, engine_env(dev_engine))
    assert run.returncode == 0, run.stderr
    assert dev_engine.wait_for(lambda e: len(e.records) >= 3)
    records = by_message(dev_engine.records)
    assert records["with string tags"]["tags"] == "RUNTIME"
    assert records["with list tags"]["tags"] == ["a", "b"]
    assert records["without tags"]["tags"] is None
    assert records["without tags"]["name"] == "splight_lib.component"
    assert records["without tags"]["loglevel"] == "WARNING"


def test_exc_info_gives_message_and_traceback_separately(dev_engine, tmp_path):
    main = write_component(
        tmp_path,
        """
        import logging
        log = logging.getLogger("app")
        log.setLevel(logging.INFO)
        try:
            raise ValueError("bad value 42")
        except ValueError:
            log.exception("could not parse %s", "input.csv")
        """,
    )
    run = run_component(main, engine_env(dev_engine))
    assert run.returncode == 0, run.stderr
    assert dev_engine.wait_for(lambda e: len(e.records) >= 1)
    (record,) = dev_engine.records
    assert record["message"] == "could not parse input.csv"
    assert record["loglevel"] == "ERROR"
    assert record["traceback"].startswith("Traceback (most recent call last):")
    assert record["traceback"].rstrip().endswith("ValueError: bad value 42")
    assert 'raise ValueError("bad value 42")' in record["traceback"]


def test_non_ascii_and_100kb_messages_arrive_intact(dev_engine, tmp_path):
    main = write_component(
        tmp_path,
        """
        import logging
        logging.basicConfig(level=logging.INFO)
        log = logging.getLogger("app")
        log.info("temperatura: 23 °C — señal ✓ 日本語 🚀")
        log.info("x" * 100_000)
        """,
    )
    run = run_component(main, engine_env(dev_engine))
    assert run.returncode == 0, run.stderr
    assert dev_engine.wait_for(lambda e: len(e.records) >= 2)
    messages = [r["message"] for r in dev_engine.records]
    assert messages[0] == "temperatura: 23 °C — señal ✓ 日本語 🚀"
    assert messages[1] == "x" * 100_000


def test_records_from_eight_threads_all_arrive_in_order_per_logger(dev_engine, tmp_path):
    main = write_component(
        tmp_path,
        """
        import logging, threading
        logging.basicConfig(level=logging.INFO)
        def work(n):
            log = logging.getLogger(f"worker.{n}")
            for i in range(250):
                log.info("record %d", i)
        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        """,
    )
    run = run_component(main, engine_env(dev_engine))
    assert run.returncode == 0, run.stderr
    assert dev_engine.wait_for(lambda e: len(e.records) >= 2000)
    assert len(dev_engine.records) == 2000
    for n in range(8):  # batches may arrive side by side: the Engine orders records by their timestamp
        mine = [r["message"] for r in dev_engine.records_in_time_order if r["name"] == f"worker.{n}"]
        assert mine == [f"record {i}" for i in range(250)]


def test_uncaught_exception_becomes_a_critical_record_and_the_run_fails(dev_engine, tmp_path):
    main = write_component(
        tmp_path,
        """
        import logging
        logging.getLogger("app").warning("about to fail")
        def explode():
            raise RuntimeError("sensor offline")
        explode()
        """,
    )
    run = run_component(main, engine_env(dev_engine))
    assert run.returncode == 1
    assert "RuntimeError: sensor offline" in run.stderr  # Python's own report is still printed
    assert dev_engine.wait_for(lambda e: ("C1", "Failed") in e.statuses)
    records = dev_engine.records
    assert records[0]["message"] == "about to fail"
    crash, ending = records[-2:]  # the runner's how-it-ended record comes last, before the status
    assert ending["name"] == "splight_runner" and ending["message"].startswith("The component exited with code 1.")
    assert crash["loglevel"] == "CRITICAL"
    assert "RuntimeError: sensor offline" in crash["message"]
    assert crash["traceback"].rstrip().endswith("RuntimeError: sensor offline")
    assert crash["filename"] == "main.py"
    assert dev_engine.statuses == [("C1", "Failed")]


def test_the_bootstrap_imports_logging_only_when_the_component_does_and_captures_from_then_on(dev_engine, tmp_path):
    # A component that does not log does not pay for logging (nor typing, threading, the pickler or
    # what they import): the hook is put in place when the component imports logging, and an uncaught
    # exception is captured either way.
    main = write_component(
        tmp_path,
        """
        import sys
        heavy = ("logging", "typing", "traceback", "threading", "contextlib", "collections", "functools",
                 "importlib.util", "weakref", "_pickle", "re", "enum", "socket", "signal")
        print(sorted(m for m in heavy if m in sys.modules), flush=True)
        def later():
            import logging
            logging.getLogger("late").warning("logged after a late import")
        later()
        raise RuntimeError("no logging needed to report this")
        """,
    )
    run = run_component(main, engine_env(dev_engine))
    assert run.returncode == 1
    assert run.stdout.splitlines()[0] == "[]"
    assert dev_engine.wait_for(lambda e: ("C1", "Failed") in e.statuses)
    got = by_message(dev_engine.records)
    assert got["logged after a late import"]["name"] == "late"
    (crash,) = [r for r in dev_engine.records if "no logging needed to report this" in r["message"]]
    assert crash["loglevel"] == "CRITICAL" and crash["filename"] == "main.py"


def test_uncaught_exception_in_a_thread_is_an_error_record(dev_engine, tmp_path):
    main = write_component(
        tmp_path,
        """
        import threading
        def work():
            raise KeyError("missing")
        t = threading.Thread(target=work, name="reader")
        t.start(); t.join()
        """,
    )
    run = run_component(main, engine_env(dev_engine))
    assert run.returncode == 0
    assert dev_engine.wait_for(lambda e: len(e.records) >= 1)
    (record,) = dev_engine.records
    assert record["loglevel"] == "ERROR"
    assert "reader" in record["message"]
    assert "KeyError" in record["traceback"]


def test_multiprocessing_children_ship_their_records(dev_engine, tmp_path):
    main = write_component(
        tmp_path,
        """
        import logging, multiprocessing as mp, os
        def child(tag):
            logging.getLogger("child").warning("hello from %s child", tag)
        if __name__ == "__main__":
            logging.getLogger("parent").warning("parent before")
            for method in ("fork", "spawn"):
                p = mp.get_context(method).Process(target=child, args=(method,))
                p.start(); p.join()
                assert p.exitcode == 0, p.exitcode
            logging.getLogger("parent").warning("parent after")
        """,
    )
    run = run_component(main, engine_env(dev_engine))
    assert run.returncode == 0, run.stderr
    assert dev_engine.wait_for(lambda e: len(e.records) >= 4)
    messages = sorted(r["message"] for r in dev_engine.records)
    assert messages == ["hello from fork child", "hello from spawn child", "parent after", "parent before"]


def test_component_output_and_logging_configuration_are_unchanged(dev_engine, tmp_path):
    main = write_component(
        tmp_path,
        """
        import logging, sys
        logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(name)s:%(message)s", stream=sys.stdout)
        root = logging.getLogger()
        print("handlers", [type(h).__name__ for h in root.handlers], "level", root.level)
        print("extra loggers", sorted(n for n in logging.Logger.manager.loggerDict if n.startswith("splight")))
        logging.getLogger("app").info("to stdout")
        print("stderr line", file=sys.stderr)
        """,
    )
    env = engine_env(dev_engine)
    with_runner = run_component(main, env)
    without = run_plain(main, env)
    assert with_runner.returncode == without.returncode == 0
    assert with_runner.stdout == without.stdout
    assert with_runner.stderr == without.stderr
    assert dev_engine.wait_for(lambda e: len(e.records) >= 1)
    assert dev_engine.records[0]["message"] == "to stdout"


def test_an_existing_user_sitecustomize_still_runs(dev_engine, tmp_path):
    site = tmp_path / "site"
    write_component(
        site,
        """
        import logging
        SITE_MARK = "user sitecustomize ran"
        print(SITE_MARK)
        """,
        name="sitecustomize.py",
    )
    main = write_component(
        tmp_path / "component",
        """
        import logging, sitecustomize
        logging.getLogger("app").warning("mark=%s", sitecustomize.SITE_MARK)
        """,
    )
    run = run_component(main, engine_env(dev_engine, PYTHONPATH=str(site)))
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0] == "user sitecustomize ran"
    assert dev_engine.wait_for(lambda e: len(e.records) >= 1)
    assert dev_engine.records[0]["message"] == "mark=user sitecustomize ran"
