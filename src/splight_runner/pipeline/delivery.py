"""Delivery to the Engine: Engine records in, the Engine's two calls out.

:class:`EngineDelivery` takes what the queue (:mod:`splight_runner.pipeline.dispatch`)
hands it, Engine log records and status updates already made by
:mod:`splight_runner.engine.records`, and owns everything about one delivery:
per-POST packing, the retry loop, splitting a body the Engine finds too large,
one Engine connection per delivery in flight, and the exact count of what was
sent, refused or given up. It knows nothing of OpenTelemetry: the SDK's
``splight`` exporter (:mod:`splight_runner.pipeline.exporter`) is this class
behind the SDK's exporter interface, and the runner's direct path uses it as it is.
"""

from __future__ import annotations

import threading
from collections import deque

from splight_runner import settings as config
from splight_runner.diagnostics import say, say_limited
from splight_runner.engine.client import (
    MAX_BYTES_PER_POST,
    MAX_RECORDS_PER_POST,
    EngineClient,
    EngineError,
    pack_records,
)
from splight_runner.engine.records import EngineItem, EngineRecord, StatusUpdate, as_mapping, is_record
from splight_runner.engine.retry import Deadline, Retrier

#: The Engine's answer to a body it finds too large: split it, down to single records.
TOO_LARGE = 413
#: How long a delivery cut short by the exit deadline holds the worker (see ``deliver``).
HOLD_AT_DEADLINE = 60.0
#: Characters of a refused record's message named on stderr.
NAMED_MESSAGE_CHARS = 80


class DeliveryStats:
    """What happened to the records this process handed to the delivery.

    Every log record handed to :meth:`EngineDelivery.deliver` ends up in
    exactly one of ``sent``, ``rejected`` and ``abandoned``; every status that
    was due in one of ``statuses_sent``, ``rejected_statuses`` and
    ``abandoned_statuses``. (A plain class: ``dataclasses`` brings ``inspect``,
    milliseconds of the runner's start-up.)
    """

    __slots__ = (
        "abandoned",
        "abandoned_statuses",
        "rejected",
        "rejected_statuses",
        "rejections",
        "sent",
        "statuses_sent",
    )

    def __init__(self) -> None:
        self.sent = 0
        self.statuses_sent = 0
        #: Log records the Engine refused for good (4xx), or that could not be made into Engine records.
        self.rejected = 0
        #: Statuses the Engine refused for good, in order.
        self.rejected_statuses: list[str] = []
        #: Log records given up on at the deadline.
        self.abandoned = 0
        #: Statuses given up on at the deadline, in order.
        self.abandoned_statuses: list[str] = []
        #: Times records or statuses were rejected (each said, rate-limited, when it happened).
        self.rejections = 0


class EngineDelivery:
    """Sends Engine log records to ``logs/write`` and status updates to ``update-status``.

    :meth:`deliver` may run in several threads at once (the queue keeps
    ``SPLIGHT_RUNNER_EXPORT_CONCURRENCY`` calls in flight): each running
    delivery borrows an :class:`EngineClient` of its own (a connection carries
    one request at a time) and the counts are updated under one lock, so that
    every record is still counted exactly once.
    """

    def __init__(
        self,
        *,
        engine: config.EngineSettings | None = None,
        process_id: str | None = None,
        sender_type: str | None = None,
        timeout: float | None = None,
    ) -> None:
        engine = engine or config.engine_settings()
        self._timeout = timeout if timeout is not None else config.delivery_settings().export_timeout
        self._engine = engine
        self._client_timeout = min(self._timeout, 10.0)
        #: Every client made so far, and those no delivery is using (made on demand, kept for keep-alive).
        self._clients: list[EngineClient] = [EngineClient(engine, timeout=self._client_timeout)]
        self._idle_clients: list[EngineClient] = list(self._clients)
        self._clients_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        #: Who the records are from, when a record does not say (the SDK path reads its resource).
        self.process_id = process_id or config.process_id()
        self.sender_type = sender_type or config.process_type()
        self._last_status: dict[str, str] = {}
        self._retrier = Retrier()
        self._held = threading.Event()  # never set: a hold at the deadline ends by its timeout
        self.stats = DeliveryStats()

    def shutdown(self) -> None:
        self._say_rejected_total()
        with self._clients_lock:
            clients = list(self._clients)
        for client in clients:
            client.close()

    # --- used by the queue (pipeline.dispatch) ----------------------------------
    def hurry(self) -> None:
        """Cut the current backoff sleep short (a flush or exit is waiting)."""
        self._retrier.hurry()

    def cut_calls_at(self, at: float) -> None:
        """End the Engine calls in flight by ``at`` at the latest (the exit deadline was brought forward)."""
        with self._clients_lock:
            clients = list(self._clients)
        for client in clients:  # a call started later reads the moved deadline itself
            client.cut_at(at)

    def failing(self) -> bool:
        """True while calls fail and are being retried (an outage), until one succeeds again."""
        return self._retrier.failing

    def after_fork(self) -> None:
        self._clients_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        for client in self._clients:
            client.after_fork()
        self._idle_clients = list(self._clients)  # the parent's deliveries do not go on in the child
        self._retrier.reset()
        self.stats = DeliveryStats()

    def _borrow_client(self) -> EngineClient:
        """A client no other delivery is using; a new one when all are busy."""
        with self._clients_lock:
            if self._idle_clients:
                return self._idle_clients.pop()
            client = EngineClient(self._engine, timeout=self._client_timeout)
            self._clients.append(client)
            return client

    def _return_client(self, client: EngineClient) -> None:
        with self._clients_lock:
            self._idle_clients.append(client)

    def deliver(self, batch: list[EngineItem], deadline: Deadline, *, hold: bool = True) -> bool:
        """Send ``batch`` in order: runs of log records as logs/write POSTs, each status as its own call.

        Every record ends up sent, rejected (counted and said, rate-limited) or
        undelivered, exactly once; never raises.

        When the deadline (the exit's) passes, ``batch`` (the queue's in-flight
        list) is cut down to what was not delivered and this call *holds* for
        :data:`HOLD_AT_DEADLINE`: the exit report reads the queue's in-flight
        lists and the queue at that moment, and a sender that went on moving
        records from one to the other (or into ``abandoned``) would make it
        count some twice or not at all. With ``hold=False`` (the SDK's
        ``export``, whose deadline is not an exit) what is left is counted in
        ``abandoned`` at once. Returns False when the deadline cut it short.
        """
        client = self._borrow_client()
        try:
            return self._deliver(batch, deadline, hold, client)
        finally:
            self._return_client(client)

    def _deliver(self, batch: list[EngineItem], deadline: Deadline, hold: bool, client: EngineClient) -> bool:
        items = list(batch)
        run: list[EngineRecord] = []
        for index, item in enumerate(items):
            if is_record(item):
                run.append(item)
                continue
            if run:
                left = self._send_logs(run, deadline, client)
                if left is not None:
                    return self._left_at_deadline(batch, [*left, *items[index:]], hold)
            run = []
            if not self._send_status(item, deadline=deadline, client=client):
                return self._left_at_deadline(batch, items[index:], hold)
        if run:
            left = self._send_logs(run, deadline, client)
            if left is not None:
                return self._left_at_deadline(batch, left, hold)
        return True

    def _left_at_deadline(self, batch: list[EngineItem], left: list[EngineItem], hold: bool) -> bool:
        if hold:
            batch[:] = left
            self._held.wait(HOLD_AT_DEADLINE)
            batch.clear()  # counted below instead; nobody reads the report this long after the exit
        with self._stats_lock:
            for item in left:
                if is_record(item):
                    self.stats.abandoned += 1
                else:
                    self.stats.abandoned_statuses.append(item.status)
        return False

    def count_unsendable(self, why: str, reason: str) -> None:
        """A record that never became an Engine record: counted as rejected, said (rate-limited)."""
        self._count_rejected(1)
        say_limited(why, reason)

    def _count_rejected(self, records_: int = 0, status: str | None = None) -> None:
        with self._stats_lock:
            self.stats.rejected += records_
            if status is not None:
                self.stats.rejected_statuses.append(status)
            self.stats.rejections += 1

    def _send_logs(
        self, records_: list[EngineRecord], deadline: Deadline, client: EngineClient
    ) -> list[EngineRecord] | None:
        """POST ``records_`` within the per-POST limits; a body answered 413 is split in halves, down to one record.

        Each record is counted once, sent or rejected; returns None, or, when
        the deadline passed, the records not handled yet (for the caller to count).
        """
        pending = deque(self._pack(records_))
        while pending:
            body, part = pending.popleft()
            outcome = self._retrier.call(
                lambda limit, body=body: client.write_logs(body, deadline=limit),
                deadline=deadline,
                what=f"{len(part)} log records",
                handled=frozenset({TOO_LARGE}),
            )
            if outcome is None:
                return [*part, *(record for _, rest in pending for record in rest)]
            if outcome:
                with self._stats_lock:
                    self.stats.sent += len(part)
                continue
            rejection = self._retrier.rejection
            if rejection is not None and rejection.status == TOO_LARGE:
                if len(part) > 1:
                    half = len(part) // 2
                    pending.extendleft(reversed([*self._pack(part[:half]), *self._pack(part[half:])]))
                    continue
                self._refused_alone(part[0], rejection)
            self._count_rejected(len(part))
        return None

    def _pack(self, records_: list[EngineRecord]) -> list[tuple[bytes, list[EngineRecord]]]:
        """Bodies within the per-POST limits, each with the records it carries."""
        try:
            packed = pack_records(records_, max_records=MAX_RECORDS_PER_POST, max_bytes=MAX_BYTES_PER_POST)
        except Exception:
            packed = None
        if packed is not None:
            bodies, start = [], 0
            for body, count in packed:
                bodies.append((body, records_[start : start + count]))
                start += count
            return bodies
        # pack_records is made never to raise; should a record still make it, it alone is lost.
        bodies = []
        for record in records_:
            try:
                [(body, _)] = pack_records([record], max_bytes=MAX_BYTES_PER_POST)
            except Exception as error:
                self._count_rejected(1)
                say_limited(
                    "unencodable-record",
                    f"a log record {_name(record)} could not be encoded ({describe(error)}); dropped",
                )
                continue
            bodies.append((body, [record]))
        return bodies

    def _refused_alone(self, record: EngineRecord, rejection: EngineError) -> None:
        say_limited(
            "engine-refused-record",
            f"the Engine refused a log record {_name(record)} on its own ({rejection}); dropped",
        )

    def _say_rejected_total(self) -> None:
        """At the end, the total of what the Engine refused, when the lines said along the way were limited."""
        stats = self.stats
        if stats.rejections <= 1:
            return
        what = [f"{stats.rejected} log records"] if stats.rejected else []
        what += [f"status {status}" for status in stats.rejected_statuses]
        if what:
            say(f"splight (the Splight Engine): {' and '.join(what)} were refused or could not be sent, in all")

    def _send_status(self, update: StatusUpdate, *, deadline: Deadline, client: EngineClient) -> bool:
        process_id, status = update
        if self._last_status.get(process_id) == status:
            return True
        outcome = self._retrier.call(
            lambda limit: client.update_status(process_id, status, deadline=limit),
            deadline=deadline,
            what=f"status {status}",
        )
        if outcome is None:
            return False  # the caller counts it with what is left
        if outcome:
            self._last_status[process_id] = status
            with self._stats_lock:
                self.stats.statuses_sent += 1
        else:
            self._count_rejected(status=status)
        return True


def _name(record: EngineRecord) -> str:
    """A refused record, named for stderr: its logger and the start of its message."""
    fields = as_mapping(record)
    message = str(fields.get("message", ""))
    if len(message) > NAMED_MESSAGE_CHARS:
        message = message[:NAMED_MESSAGE_CHARS] + "…"
    return f"of logger {str(fields.get('name', ''))!r}: {message!r}"


def describe(error: BaseException) -> str:
    try:
        return f"{type(error).__name__}: {error}"
    except Exception:
        return type(error).__name__
