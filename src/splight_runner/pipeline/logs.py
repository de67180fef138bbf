"""One log pipeline, whichever process hosts it.

Where an OpenTelemetry exporter is a destination: an SDK ``LoggerProvider`` with
the component's resource, one processor per exporter ``OTEL_LOGS_EXPORTER``
names (the Splight processor for ``splight``, the SDK's
``BatchLogRecordProcessor`` for the others), the flat-record emitter
(:class:`~splight_runner.pipeline.flat.FlatEmitter`), and per-destination
accounting. Where the Engine is the only destination, the runner's pipeline is
the Engine queue fed by :class:`~splight_runner.pipeline.flat.EngineEmitter`
(no SDK: see :func:`build`). The supervisor builds one with :func:`build`;
under ``opentelemetry-instrument`` the component wraps the provider upstream's
set-up made. Either way the same code decides what goes in (statuses only for
components), what the final status is, and what is said at the end about
records that could not be delivered.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence

from splight_runner.bootstrap.splight_capture.wire import DROPPED, LOG, STATUS, UNCAUGHT_LOGGER
from splight_runner.diagnostics import say
from splight_runner.engine import records
from splight_runner.pipeline.accounting import destination_label
from splight_runner.pipeline.deadline import ExitDeadline, as_deadline
from splight_runner.pipeline.flat import FlatEmitter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Destination names as the operator wrote them in OTEL_LOGS_EXPORTER.
SPLIGHT = "splight"


class LogPipeline:
    """Feeds flat items into a provider and owns the end: final status, last flush, exit report.

    ``provider`` is what is flushed and shut down at the end: the SDK's
    ``LoggerProvider``, or on the direct path the Engine queue itself (it has
    the same ``force_flush`` and ``shutdown``). ``emitter`` defaults to a
    :class:`FlatEmitter` on the provider.
    """

    def __init__(
        self,
        provider: Any,
        *,
        splight: Any = None,
        others: Sequence[Any] = (),
        process_type: str = "component",
        code_attributes: bool = False,
        emitter: Any = None,
    ) -> None:
        self.provider = provider
        #: The Splight processor, if ``splight`` is a destination (it gives back-pressure and exact counts).
        self.splight = splight
        self.others = list(others)
        self.sends_statuses = records.sends_status(process_type)
        self.emitter = emitter or FlatEmitter(provider, code_attributes=code_attributes)
        self._ended = False
        #: Records dropped before they reached this pipeline (the component's channel, the intake).
        self.lost_upstream = 0
        #: The traceback text of the last uncaught exception the component shipped (the runner's
        #: how-it-ended record leaves it out of the stderr it attaches: the user reads it once).
        self.uncaught_traceback: str | None = None

    # --- feeding -----------------------------------------------------------------
    def emit(self, item: tuple[Any, ...]) -> None:
        kind = item[0]
        if kind == STATUS and not self.sends_statuses:
            return  # an agent or compute node sends records, never a status
        if kind == DROPPED:
            self.report_drops(item[1], item[2], item[3])  # lost before this pipeline: counted like its own
            return
        if kind == LOG and item[1] == UNCAUGHT_LOGGER and item[10]:
            self.uncaught_traceback = item[10][2]
        self.emitter.emit(item)

    def has_room(self) -> bool:
        return self.splight is None or self.splight.has_room()

    def wait_for_room(self, deadline: Callable[[], float | None]) -> bool:
        """Hold the feeder while the Splight queue is full and the Engine is taking records.

        A burst while the Engine is healthy waits here (held in bytes by the
        supervisor's intake) instead of being dropped. While the Engine is failing,
        the queue's bound (``OTEL_BLRP_MAX_QUEUE_SIZE``) applies: the newest records
        are dropped and counted, and reported once the Engine is back. False once the
        exit deadline has passed.
        """
        splight = self.splight
        while splight is not None and not splight.has_room() and not splight.engine_is_failing():
            give_up_at = deadline()
            if give_up_at is not None and time.monotonic() >= give_up_at:
                return False
            time.sleep(0.005)
        return True

    def report_drops(self, count: int, first_ns: int, last_ns: int) -> None:
        """Records lost on their way here: in the exit report of every destination, and one WARNING record."""
        self.lost_upstream += count
        if self.splight is not None:
            self.splight.drops.add_span(count, first_ns, last_ns)
        else:
            self.emitter.emit_drop_report(count, first_ns, last_ns)

    def after_fork_in_child(self) -> None:
        """A forked child ships its own records and owes nothing of the parent's accounting."""
        self._ended = False
        self.lost_upstream = 0
        if self.splight is not None:
            self.splight.after_fork_in_child()
        for processor in self.others:
            processor.emitted = 0
            processor.exporter.exported = 0

    @property
    def last_status(self) -> str | None:
        return self.emitter.last_status

    # --- the end ---------------------------------------------------------------------
    def flush(self, give_up_at: float) -> None:
        """Everything emitted so far out, waiting at most until ``give_up_at`` (before an exec)."""
        with contextlib.suppress(Exception):
            self.provider.force_flush(int(max(0.0, give_up_at - time.monotonic()) * 1000))

    def end(
        self,
        exit_status: str | None,
        give_up_at: float | ExitDeadline,
        *,
        lost_before: int = 0,
        last_words: tuple[Any, ...] | None = None,
    ) -> int:
        """How it ended (``last_words``, a flat record, after an abnormal end), the final status (if
        owed) as the last record, one flush bounded by ``give_up_at``, the report.

        ``give_up_at`` may be an :class:`ExitDeadline` that a stop signal brings
        forward while this runs. Returns the number of records that could not be
        delivered to some destination.
        """
        deadline = as_deadline(give_up_at)
        if self._ended:
            return 0
        self._ended = True
        if last_words is not None:
            if self.splight is not None:
                # How it ended explains the final status: after every record, as the status is.
                self.splight.final_flush(deadline)
            self.emitter.emit(last_words)
        final = records.final_status(self.last_status, exit_status) if self.sends_statuses else None
        if final is not None:
            self.emitter.emit_status(final, time.time_ns())
        if self.splight is not None:
            self.splight.final_flush(deadline)
        closer = threading.Thread(target=self._close_provider, name="splight-runner-shutdown", daemon=True)
        try:
            closer.start()
        except RuntimeError:  # Python 3.12+ starts no thread from atexit: close inline
            self._close_provider()
        else:
            deadline.join(closer)
        return self._report(final, lost_before)

    def _close_provider(self) -> None:
        try:
            self.provider.shutdown()
        except Exception as error:
            say(f"closing the log pipeline failed ({type(error).__name__}: {error})")

    def _report(self, final: str | None, lost_before: int) -> int:
        """One line per destination that could not take everything."""
        total = 0
        if self.splight is not None:
            lost = self.splight.undelivered_records() + lost_before
            statuses = self.splight.undelivered_statuses()
            total += lost
            if lost or statuses:
                what = [f"{lost} log records"] if lost else []
                what += [f"status {status}" for status in statuses]
                say(f"{destination_label(SPLIGHT)}: {' and '.join(what)} could not be delivered before exit")
        for processor in self.others:
            lost = processor.undelivered() + lost_before + self.lost_upstream
            total += lost
            if lost:
                where = destination_label(processor.exporter.name)
                say(f"{where}: {lost} log records could not be delivered before exit")
        return total


def build(
    exporter_names: Sequence[str],
    resource_attributes: dict[str, Any],
    *,
    make_splight_processor: Callable[[], Any],
    make_engine_queue: Callable[[], Any] | None = None,
    process_type: str,
    code_attributes: bool,
) -> LogPipeline:
    """The component's pipeline in the supervisor, with every destination.

    With ``splight`` the only destination (and ``make_engine_queue`` given), the
    direct path: flat items become Engine records as they arrive, and no
    OpenTelemetry module is imported. The SDK would add nothing the Engine
    sees (it reads none of the SDK record's other fields), and building it cost
    most of the runner's start-up and half its work per record. Otherwise an SDK
    ``LoggerProvider`` with the component's resource and one processor per
    destination.
    """
    if list(exporter_names) == [SPLIGHT] and make_engine_queue is not None:
        from splight_runner.pipeline.flat import EngineEmitter
        from splight_runner.pipeline.resource import engine_identity

        queue = make_engine_queue()
        process_id, sender_type = engine_identity(resource_attributes)
        emitter = EngineEmitter(queue, process_id=process_id or queue.delivery.process_id, sender_type=sender_type)
        return LogPipeline(queue, splight=queue, process_type=process_type, emitter=emitter)

    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    from splight_runner.pipeline.counting import CountingExporter, CountingProcessor

    provider = LoggerProvider(resource=Resource.create(resource_attributes), shutdown_on_exit=False)
    splight = None
    others: list[CountingProcessor] = []
    for name in exporter_names:
        if name == SPLIGHT:
            splight = make_splight_processor()
            provider.add_log_record_processor(splight)
            continue
        exporter = CountingExporter(name, exporter_class(name)())
        processor = CountingProcessor(BatchLogRecordProcessor(exporter), exporter)
        provider.add_log_record_processor(processor)
        others.append(processor)
    return LogPipeline(
        provider, splight=splight, others=others, process_type=process_type, code_attributes=code_attributes
    )


def exporter_class(name: str) -> type:
    """The log exporter class upstream's set-up would load for ``name``.

    ``otlp`` follows ``OTEL_EXPORTER_OTLP_PROTOCOL`` as upstream resolves it.
    """
    from opentelemetry.sdk._configuration import _get_exporter_entry_point, _import_exporters

    resolved = _get_exporter_entry_point(name, "logs")
    return _import_exporters([], [], [resolved])[2][resolved]


__all__ = ["LogPipeline", "build", "exporter_class"]
