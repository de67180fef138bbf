"""capture.flattener: a record reduced to the flat tuple the pipeline reads, extras found wherever they sit."""

from __future__ import annotations

import logging

from splight_runner.bootstrap.splight_capture import wire
from splight_runner.bootstrap.splight_capture.capture import flattener
from splight_runner.pipeline.flat import FlatEmitter


def _extras(record: logging.LogRecord) -> dict | None:
    item = flattener()(record)
    assert item[0] == wire.LOG and len(item) == wire.LOG_FIELDS
    assert wire.decode(wire.encode([item])) == [item]  # what crosses to the supervisor
    return item[9]


def _record(**extra: object) -> logging.LogRecord:
    return logging.getLogger("t").makeRecord("t", logging.INFO, "/x/main.py", 3, "hello %s", ("you",), None, "f", extra)


def test_extras_are_the_records_user_attributes_and_nothing_else() -> None:
    assert _extras(_record()) is None
    assert _extras(_record(tags="RUNTIME", count=3)) == {"tags": "RUNTIME", "count": 3}


def test_what_a_formatter_adds_is_not_an_extra() -> None:
    record = _record(tags="RUNTIME")
    logging.Formatter("%(asctime)s %(message)s").format(record)
    assert "asctime" in record.__dict__ and "message" in record.__dict__
    assert _extras(record) == {"tags": "RUNTIME"}


def test_a_record_class_that_sets_attributes_before_init_loses_none() -> None:
    class Early(logging.LogRecord):
        def __init__(self, *args: object, **kwargs: object) -> None:
            self.tenant = "north"  # before LogRecord.__init__: first in __dict__
            super().__init__(*args, **kwargs)

    record = Early("t", logging.INFO, "/x/main.py", 3, "hello", None, None, "f")
    record.tags = "RUNTIME"
    assert _extras(record) == {"tenant": "north", "tags": "RUNTIME"}


def test_private_attributes_are_not_extras_and_odd_values_become_plain() -> None:
    loop: list[object] = []
    loop.append(loop)
    extras = _extras(_record(_hidden=1, when=object, nested={"a": loop}))
    assert set(extras) == {"when", "nested"}
    assert isinstance(extras["when"], str)
    assert "nested too deep" in repr(extras["nested"])


def test_a_logger_per_request_does_not_grow_the_pipeline() -> None:
    """100,000 distinct logger names (a logger per request): the host's per-name state stays bounded."""
    import tracemalloc

    from opentelemetry.sdk._logs import LoggerProvider

    class Discard:
        def on_emit(self, record):
            pass

        emit = on_emit

        def shutdown(self) -> None:
            pass

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(Discard())
    emitter = FlatEmitter(provider)
    flatten = flattener()
    tracemalloc.start()
    for i in range(2_000):
        emitter.emit(flatten(logging.getLogger("warm").makeRecord(f"warm.{i}", 20, "/m.py", 1, "x", None, None)))
    before = tracemalloc.get_traced_memory()[0]
    for i in range(100_000):
        emitter.emit(flatten(logging.getLogger("t").makeRecord(f"request.{i}", 20, "/m.py", 1, "x", None, None)))
    grew = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grew < 5 * 1024 * 1024, grew
