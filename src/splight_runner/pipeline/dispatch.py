"""The queue in front of the Engine: order, bounds, calls in flight, the exit deadline.

:class:`EngineQueue` holds Engine records and status updates (made by
:mod:`splight_runner.engine.records`) between whatever makes them and
:class:`~splight_runner.pipeline.delivery.EngineDelivery`. It exists because
the Engine path needs what the SDK's ``BatchLogRecordProcessor`` does not give:
drop-newest with an exact count and a WARNING record about it, retries that go
on while the queue has room, a flush that waits for in-flight retries instead
of exporting beside them (no duplicates), and a deadline that a dead Engine
cannot exceed at exit. It knows nothing of OpenTelemetry: the SDK's processor
(:mod:`splight_runner.pipeline.processor`) is this queue behind the SDK's
processor interface, and the runner's direct path feeds it as it is.

And it keeps several Engine calls in flight
(``SPLIGHT_RUNNER_EXPORT_CONCURRENCY``), as the OpenTelemetry Collector's
exporters keep ``num_consumers``: one call carries at most 1,000 records, so
one call at a time against an Engine 300 ms away moves at most about 3,300
records a second, and a component that logs 30,000 records and exits would
lose its final status at the exit deadline. Order stays where a user sees it:
a status (the final one included) is sent only once every record batch before
it was accepted or given up, and nothing after it is sent before it; records
carry their ``timestamp``, and when they do not (``historical``) one call is
in flight, so the Engine receives them in order.
"""

from __future__ import annotations

import os
import threading
import time
from _queue import SimpleQueue  # the C queue itself: ``queue`` adds heapq and more for classes not used
from collections import deque

from splight_runner import settings as config
from splight_runner.diagnostics import say
from splight_runner.engine import records
from splight_runner.engine.records import EngineItem, EngineRecord, StatusUpdate, is_record
from splight_runner.pipeline.accounting import DropCounter, FlushMarker
from splight_runner.pipeline.deadline import ExitDeadline, as_deadline
from splight_runner.pipeline.delivery import DeliveryStats, EngineDelivery
from splight_runner.pipeline.flat import RUNNER_SCOPE, SEVERITY_WARN

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Default bound of the queue in (estimated) bytes, beside ``OTEL_BLRP_MAX_QUEUE_SIZE`` records:
#: the count binds for short records (20,000 of about 0.4 KB), this for long ones (800 records of 40 KB).
#: An edge node runs many runners; with the intake's 32 MiB this keeps a runner whose Engine is
#: down under ≈ 100 MiB whatever its component logs (64 MiB before).
DEFAULT_MAX_QUEUE_BYTES = 32 << 20


#: What a queued Engine record holds besides its message and traceback: the dict and its other
#: values (measured with tracemalloc: about 410 B for a record with a short message).
RECORD_OVERHEAD = 400
#: What a record queued as its JSON (``bytes``) holds besides that JSON: the object's header.
JSON_RECORD_OVERHEAD = 40


def _size(item: EngineItem) -> int:
    """A cheap estimate of what a queued item holds: its text and a fixed overhead."""
    kind = type(item)
    if kind is bytes:
        return JSON_RECORD_OVERHEAD + len(item)  # type: ignore[arg-type]
    if kind is dict:
        return RECORD_OVERHEAD + len(item["message"]) + len(item["traceback"])  # type: ignore[index]
    return RECORD_OVERHEAD


def _is_status(item: Any) -> bool:
    return type(item) is StatusUpdate


class _Sender:
    """One Engine call in flight at a time, on its own thread, fed one batch at a time by the dispatcher.

    :attr:`batch` is the list being delivered (the delivery cuts it to what is
    left at the exit deadline), read by the exit report as "in flight".
    """

    def __init__(self, processor: EngineQueue, number: int) -> None:
        self._processor = processor
        self._inbox: SimpleQueue[list[EngineItem] | None] = SimpleQueue()
        self.batch: list[EngineItem] = []
        self.busy = False
        #: None when no thread could be started.
        self.thread: threading.Thread | None = None
        thread = threading.Thread(target=self._run, name=f"splight-runner-export-{number}", daemon=True)
        try:
            thread.start()
        except RuntimeError:
            # Python 3.12+ starts no thread during interpreter shutdown (an in-process exit flush):
            # the dispatcher delivers this sender's batches on its own thread instead.
            return
        self.thread = thread

    def send(self, batch: list[EngineItem]) -> None:
        """Hand ``batch`` over (the dispatcher marked this sender busy and filled the list)."""
        self._inbox.put(batch)

    def stop(self) -> None:
        if self.thread is not None:
            self._inbox.put(None)

    def _run(self) -> None:
        while True:
            batch = self._inbox.get()  # no timeout: an idle sender never wakes up
            if batch is None:
                return
            self._processor._deliver(batch)
            self._processor._sender_done(self)


class EngineQueue:
    """Bounded queue, one dispatcher thread and up to N sender threads: the only paths that call the delivery.

    The dispatcher (``splight-runner-export``) is the only thread that takes
    records off the queue; it hands batches of records to the senders (each
    with one Engine call in flight at a time, started on demand) and delivers a
    status itself, once every sender is idle. It sleeps without a timeout while
    the queue is empty: the schedule delay's timer exists only while a record
    waits.
    """

    max_queue_bytes = DEFAULT_MAX_QUEUE_BYTES

    def __init__(
        self,
        delivery: EngineDelivery,
        *,
        max_queue_size: int | None = None,
        schedule_delay_millis: int | None = None,
        max_export_batch_size: int | None = None,
        export_timeout_millis: int | None = None,
        drops: DropCounter | None = None,
        settings: config.DeliverySettings | None = None,
        export_concurrency: int | None = None,
    ) -> None:
        """Each value not given comes from ``settings``, else from the environment (read once)."""
        self._delivery = delivery
        given = (max_queue_size, schedule_delay_millis, max_export_batch_size, export_timeout_millis)
        chosen = settings if settings is not None or all(given) else config.delivery_settings()
        self.max_queue_size = max_queue_size or chosen.max_queue_size
        self._delay = (schedule_delay_millis or chosen.schedule_delay_ms) / 1000
        self._batch_size = min(max_export_batch_size or chosen.max_export_batch_size, self.max_queue_size)
        self.export_timeout = (export_timeout_millis or chosen.export_timeout_ms) / 1000
        concurrency = export_concurrency or (
            chosen.export_concurrency if chosen is not None else config.DEFAULT_EXPORT_CONCURRENCY
        )
        #: Engine calls kept in flight at most (one when records carry no timestamp, see ``_concurrency``).
        self.export_concurrency = max(1, concurrency)
        self._queue: deque[Any] = deque()
        self._exit_deadline: ExitDeadline | None = None
        self._shutdown = False
        #: Shared with the capture intake (see component.configuration) so one report covers both queues.
        self.drops = drops if drops is not None else DropCounter()
        #: The last Engine record handed to a sender: whose records the drop report speaks for.
        self._template: EngineRecord | None = None
        #: A status the dispatcher is delivering itself (in flight, for the exit report).
        self._in_flight: list[EngineItem] = []
        #: Estimated bytes held in the queue: 20,000 records of 40 KB must not mean 800 MB.
        self._queued_bytes = 0
        self._pid = os.getpid()
        self._start()

    @property
    def stats(self) -> DeliveryStats:
        return self._delivery.stats

    @property
    def delivery(self) -> EngineDelivery:
        return self._delivery

    def _waiting(self) -> list[Any]:
        """Every record in flight (the dispatcher's status, each sender's batch), then the queue."""
        waiting = list(self._in_flight)
        for sender in list(self._senders):
            waiting += sender.batch
        waiting += self._queue
        return waiting

    def undelivered_records(self) -> int:
        """Log records that did not reach the Engine: dropped, abandoned, or still queued or in flight."""
        waiting = self._waiting()
        queued = sum(1 for item in waiting if is_record(item))
        return self.drops.total + self.stats.abandoned + queued

    def undelivered_statuses(self) -> list[str]:
        """Statuses that did not reach the Engine, in order (abandoned, then still queued)."""
        queued = [item.status for item in self._waiting() if type(item) is StatusUpdate]
        return [*self.stats.abandoned_statuses, *queued]

    def engine_is_failing(self) -> bool:
        """Whether the delivery is retrying through an outage (then a full queue drops, counted)."""
        return self._delivery.failing()

    def has_room(self) -> bool:
        """Whether a record emitted now would be queued (the supervisor's feeder waits for this)."""
        return len(self._queue) < self.max_queue_size and self._queued_bytes < self.max_queue_bytes

    def _start(self) -> None:
        self._wake = threading.Event()
        #: The dispatcher sleeps without a timeout (announced here) while nothing is queued.
        self._idle = False
        #: A status, a flush or a full batch is queued: the dispatcher does not wait for the schedule delay.
        self._urgent = False
        #: A sender delivered while records had been dropped: the dispatcher queues the WARNING record.
        self._drops_due = False
        self._senders: list[_Sender] = []
        self._senders_changed = threading.Condition(threading.Lock())
        self._in_flight = []
        self._worker = threading.Thread(target=self._run, name="splight-runner-export", daemon=True)
        self._worker.start()

    def after_fork_in_child(self) -> None:
        self._pid = os.getpid()
        self._queue.clear()
        self._queued_bytes = 0
        self._exit_deadline = None
        self.drops.reset()
        self._delivery.after_fork()
        self._start()

    # --- the way in -------------------------------------------------------------
    def put(self, item: EngineItem) -> None:
        """Queue one Engine record or status update (one thread feeds the queue: the pipeline's)."""
        if self._shutdown:
            self.drops.add()  # made after the exit flush (e.g. in a late atexit hook): counted, not sent
            return
        queue = self._queue
        is_status = type(item) is StatusUpdate
        # A status is never dropped for room: a handful per life, and the final one is the last word.
        if not is_status and (len(queue) >= self.max_queue_size or self._queued_bytes >= self.max_queue_bytes):
            self.drops.add()
            return
        self._queued_bytes += _size(item)
        queue.append(item)
        if is_status or len(queue) >= self._batch_size:
            if not self._urgent:  # one wake-up per drain, not one per record while the senders are busy
                self._urgent = True
                self._wake.set()
        elif self._idle:
            # The dispatcher announced its timeless sleep before it looked at the queue one last
            # time, and this record was appended after that look: this is the one wake-up it gets.
            self._idle = False
            self._wake.set()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait until everything queued before this call has been handled by the worker."""
        return self._flush(timeout_millis / 1000)

    def shutdown(self, timeout_millis: int | None = None) -> None:
        """Final flush: retries stop at the deadline, then the worker ends."""
        if self._shutdown:
            return
        timeout = self.export_timeout if timeout_millis is None else timeout_millis / 1000
        self.final_flush(time.monotonic() + timeout)
        self._shutdown = True
        self._wake.set()
        with self._senders_changed:
            self._senders_changed.notify_all()
        for sender in list(self._senders):
            if not sender.busy:
                sender.stop()
        self._delivery.shutdown()

    def final_flush(self, give_up_at: float | ExitDeadline) -> bool:
        """Flush with a hard deadline: what is not accepted by then is counted as abandoned.

        An :class:`ExitDeadline` may be brought forward during the flush (a stop
        signal): the wait ends at the new time, and so does the Engine call in flight.
        """
        deadline = as_deadline(give_up_at)
        if self._exit_deadline is None:
            self._exit_deadline = deadline
            deadline.on_change(self._deadline_moved)
        else:
            self._exit_deadline.bring_forward(deadline.at)
        if not self._worker.is_alive():
            return not self._queue
        return self._exit_deadline.wait(self._flush_marker().done.wait)

    def _deadline_moved(self, at: float) -> None:
        self._delivery.cut_calls_at(at)
        self._delivery.hurry()

    def _flush(self, timeout: float) -> bool:
        if not self._worker.is_alive():
            return not self._queue
        return self._flush_marker().done.wait(timeout)

    def _flush_marker(self) -> FlushMarker:
        marker = FlushMarker()
        self._queue.append(marker)
        self._urgent = True
        self._wake.set()
        self._delivery.hurry()
        return marker

    # --- dispatcher and senders ------------------------------------------------
    def _run(self) -> None:
        while not self._shutdown:
            if self._drops_due:
                self._drops_due = False
                if self.drops:
                    self._report_drops()
            if not self._queue:
                self._sleep_until_a_record()
                continue
            self._wait_for_batch()
            self._drain()

    def _sleep_until_a_record(self) -> None:
        """Sleep without a timeout until ``put`` (or a sender, a flush, shutdown) wakes the dispatcher.

        ``_idle`` is set before the queue is looked at once more, and ``put``
        reads it after appending: a record appended after that look always finds
        it set (and wakes the dispatcher), one appended before is seen by the look.
        """
        self._urgent = False  # what made it urgent was drained; the next status must wake this sleep
        self._idle = True
        if not self._queue and not self._drops_due and not self._shutdown:
            self._wake.wait()
        self._idle = False
        self._wake.clear()

    def _wait_for_batch(self) -> None:
        """A record waits: sleep the schedule delay, less when a batch is full or a status or flush is queued."""
        due = time.monotonic() + self._delay
        while not self._urgent and not self._shutdown:
            left = due - time.monotonic()
            if left <= 0:
                break
            self._wake.wait(left)
            self._wake.clear()
        self._urgent = False

    def _exit_passed(self) -> bool:
        deadline = self._exit_deadline
        return deadline is not None and deadline.passed()

    def _concurrency(self) -> int:
        """Calls allowed in flight now: one when records carry no timestamp (the Engine keeps arrival order)."""
        return self.export_concurrency if records.records_carry_timestamps() else 1

    def _drain(self) -> None:
        """Hand every queued record to a sender, and deliver each status once all before it were handled."""
        queue = self._queue
        while queue and not self._shutdown:
            if self._exit_passed():
                return  # what is still queued stays counted as queued: nothing moves once the report may read
            head = queue[0]
            if isinstance(head, FlushMarker) or _is_status(head):
                if not self._wait_until_senders_idle() or self._exit_passed():
                    return
                if isinstance(head, FlushMarker):
                    queue.popleft()
                    head.done.set()
                else:
                    self._send_status()
                continue
            sender = self._free_sender()
            if sender is None:
                return
            if self._exit_passed():  # it may have waited for this sender past the deadline
                self._sender_done(sender)
                return
            # In flight from the first record taken off the queue: an exit report read meanwhile
            # finds every record in exactly one of the two.
            batch: list[EngineItem] = []
            sender.batch = batch
            while queue and len(batch) < self._batch_size:
                item = queue[0]
                if isinstance(item, FlushMarker) or _is_status(item):
                    break
                batch.append(item)
                queue.popleft()
                self._queued_bytes -= _size(item)
            if not batch:
                self._sender_done(sender)
            elif sender.thread is None:
                self._template = batch[-1]
                self._deliver(batch)  # no thread could be started: one call in flight, this one
                self._sender_done(sender)
            else:
                self._template = batch[-1]
                sender.send(batch)

    def _send_status(self) -> None:
        """Deliver the status at the head of the queue on the dispatcher's own thread; every sender is idle."""
        status = self._queue[0]
        batch = [status]
        self._in_flight = batch
        self._queue.popleft()
        self._queued_bytes -= _size(status)
        self._deliver(batch)
        self._in_flight = []

    def _free_sender(self) -> _Sender | None:
        """An idle sender, marked busy (a new one while fewer than the concurrency exist); None at shutdown.

        While the Engine is failing, one call is in flight: the others would only
        add retries, and a batch delivered after the outage keeps its place.
        """
        with self._senders_changed:
            while not self._shutdown:
                senders = self._senders
                busy = sum(1 for sender in senders if sender.busy)
                allowed = 1 if self._delivery.failing() else self._concurrency()
                if busy < allowed:
                    for sender in senders:
                        if not sender.busy:
                            sender.busy = True
                            return sender
                    sender = _Sender(self, len(senders) + 1)
                    sender.busy = True
                    senders.append(sender)
                    return sender
                self._senders_changed.wait()
        return None

    def _wait_until_senders_idle(self) -> bool:
        """Wait until every record batch handed out was accepted or given up; False at shutdown."""
        with self._senders_changed:
            while not self._shutdown and any(sender.busy for sender in self._senders):
                self._senders_changed.wait()
        return not self._shutdown

    def _sender_done(self, sender: _Sender) -> None:
        with self._senders_changed:
            sender.batch = []
            sender.busy = False
            self._senders_changed.notify_all()
        if self._shutdown:
            sender.stop()

    def _deliver(self, batch: list[EngineItem]) -> None:
        """One delivery, on a sender's or the dispatcher's thread; never raises."""
        try:
            delivered = self._delivery.deliver(batch, self._deadline)
        except Exception as error:  # a bug must not kill a sender or the dispatcher
            say(f"export failed ({type(error).__name__}: {error})")
            delivered = False
        if delivered and self.drops:
            # The dispatcher queues the WARNING record: it alone takes from (and puts first in) the queue.
            self._drops_due = True
            self._wake.set()

    def _deadline(self) -> float | None:
        deadline = self._exit_deadline
        return None if deadline is None else deadline.at

    def _report_drops(self) -> None:
        """One WARNING record, first in line, once the Engine accepts records again."""
        report = self.drops.take_report(self.max_queue_size)
        if self._template is None or report is None:
            return
        template = records.as_mapping(self._template)  # its JSON read back: once per report
        count, message = report
        warning = records.engine_record(
            process_id=template["id"],
            sender_type=template["sender_type"],
            scope_name=RUNNER_SCOPE,
            body=message,
            severity_number=SEVERITY_WARN,
            severity_text="WARN",
            attributes={records.ATTR_DROPPED_COUNT: count},
            timestamp_ns=time.time_ns(),
        )
        self._queued_bytes += _size(warning)
        self._queue.appendleft(warning)
