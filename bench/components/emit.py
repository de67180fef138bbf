"""Emit cost on the component's own thread: N ``logger.info`` calls to a StreamHandler on devnull.

Measured inside the component with ``perf_counter`` (wall) and ``thread_time``
(this thread's CPU only): the wall figure includes the GIL time the runner's
background threads take from the component; the CPU figure is the capture
hook's own cost plus what sharing the GIL with busy threads costs the calling
thread (see ``gil_probe.py``). ``BENCH_MODE``:

* ``plain``: nothing more (run with and without the runner);
* ``span``: the same calls inside an active span (OTel API; a real span under the runner);
* ``otel-stock``: the stock OTel ``LoggingHandler`` + ``BatchLogRecordProcessor``
  set up by hand, exporting to an exporter that drops everything (no runner);
* ``hook-only``: under the runner, its channel discards each full batch
  instead of writing it to the runner, so the hook runs as usual: the hook's
  own cost on this thread (nothing is shipped).

``BENCH_HANDLER``: ``devnull`` (default: a StreamHandler on ``/dev/null``, a
``Formatter`` call of about 20 µs) or ``stdout`` (a StreamHandler on stdout,
which the harness reads through a pipe: the cheap call of about 6 µs).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator

N = int(os.environ.get("BENCH_N", "50000"))
WARMUP = min(500, N)
MODE = os.environ.get("BENCH_MODE", "plain")
HANDLER = os.environ.get("BENCH_HANDLER", "devnull")


def _stock_otel_handler() -> logging.Handler:
    """What a user gets from the OTel SDK alone: LoggingHandler → BatchLogRecordProcessor → exporter."""
    import warnings

    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult

    try:
        from opentelemetry.instrumentation.logging.handler import LoggingHandler
    except ImportError:  # older instrumentation-logging: the SDK's own (deprecated) handler
        from opentelemetry.sdk._logs import LoggingHandler  # type: ignore[assignment]

    class DropExporter(LogRecordExporter):
        def export(self, batch):  # type: ignore[no-untyped-def]
            return LogRecordExportResult.SUCCESS

        def shutdown(self) -> None:
            pass

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    provider = LoggerProvider()
    provider.add_log_record_processor(BatchLogRecordProcessor(DropExporter()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return LoggingHandler(logger_provider=provider)


def _idle_runner_capture() -> None:
    """Make the runner's channel discard full batches (reached through the installed hook: a benchmark may)."""
    for cell in logging.Logger.callHandlers.__closure__ or ():
        sink = cell.cell_contents
        if type(sink).__name__ == "Channel":
            sink.full = sink.items.clear
            sink.close(timeout=0)  # no timer thread writing partial batches either
            return
    raise SystemExit("hook-only: the runner's capture hook is not installed")


@contextlib.contextmanager
def _maybe_span() -> Iterator[None]:
    if MODE != "span":
        yield
        return
    from opentelemetry import trace

    with trace.get_tracer("bench").start_as_current_span("bench-emit"):
        yield


def main() -> None:
    logger = logging.getLogger("bench.emit")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if HANDLER == "stdout":
        logger.addHandler(logging.StreamHandler(sys.stdout))
    else:
        logger.addHandler(logging.StreamHandler(open(os.devnull, "w")))  # noqa: SIM115 - lives as long as the process
    if MODE == "otel-stock":
        logger.addHandler(_stock_otel_handler())
    if MODE == "hook-only":
        _idle_runner_capture()
    info = logger.info
    tags = {"tags": "RUNTIME"}
    with _maybe_span():
        for i in range(WARMUP):
            info("warm-up %d of %d", i, WARMUP, extra=tags)
        wall0, cpu0 = time.perf_counter(), time.thread_time()
        for i in range(N):
            info("record %d of %d", i, N, extra=tags)
        wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0

    from _report import report

    report(n=N, wall=wall, cpu=cpu)


if __name__ == "__main__":
    main()
