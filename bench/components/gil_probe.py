"""What a busy background thread costs the logging thread, with no runner at all.

The ``emit`` row's thread-CPU ratio is much higher than the capture hook's own
cost. This probe isolates why: one process, the same ``logger.info`` call to a
``StreamHandler`` on devnull as ``emit``, a minimal hook that appends the record
to a deque, and a background thread that takes the records off the deque and
spends ``W`` µs of pure-Python work on each (``W`` = 0 only drains). Phases
alternate (no background work, then background work) several times, and the
calling thread's ``thread_time`` per call is compared phase against phase.

Prints one JSON object: for each ``W``, the median µs/call with the background
thread parked and with it working.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import statistics
import sys
import threading
import time

N = int(os.environ.get("BENCH_N", "10000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "6"))
WORK_US = [float(w) for w in os.environ.get("BENCH_WORK_US", "0,5,15,30").split(",")]
WAKE_EVERY = 1000  # like the runner's capture thread: woken per batch, not per record


def _spin_for(us: float) -> int:
    """Iterations of a pure-Python loop that take about ``us`` µs on this machine."""
    if us <= 0:
        return 0
    loops = 100_000
    start = time.perf_counter()
    for _ in range(loops):
        pass
    per_loop = (time.perf_counter() - start) / loops
    return max(1, int(us / 1e6 / per_loop))


def main() -> None:
    items: collections.deque = collections.deque()
    wake = threading.Event()
    log = logging.getLogger("probe")
    log.propagate = False
    log.addHandler(logging.StreamHandler(open(os.devnull, "w")))  # noqa: SIM115
    log.setLevel(logging.INFO)
    original = logging.Logger.callHandlers

    def hook(logger: logging.Logger, record: logging.LogRecord) -> None:
        original(logger, record)
        items.append((record, record.getMessage()))
        if len(items) == WAKE_EVERY:
            wake.set()

    logging.Logger.callHandlers = hook  # type: ignore[method-assign]
    state = {"working": False, "spin": 0}

    def worker() -> None:
        while True:
            wake.wait()
            wake.clear()
            while state["working"] and items:
                items.popleft()
                for _ in range(state["spin"]):
                    pass

    threading.Thread(target=worker, daemon=True).start()
    for i in range(2000):
        log.info("record %d of %d", i, N, extra={"tags": "RUNTIME"})
    result = {}
    for work in WORK_US:
        state["spin"] = _spin_for(work)
        phases: dict[str, list[float]] = {"parked": [], "working": []}
        for _ in range(ROUNDS):
            for phase in phases:
                items.clear()
                state["working"] = phase == "working"
                start = time.thread_time()
                for i in range(N):
                    log.info("record %d of %d", i, N, extra={"tags": "RUNTIME"})
                phases[phase].append((time.thread_time() - start) / N * 1e6)
                wake.set()
                while state["working"] and items:
                    time.sleep(0.005)
        result[str(work)] = {phase: statistics.median(values) for phase, values in phases.items()}
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
