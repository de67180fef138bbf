"""Log ``BENCH_N`` records (no handler of its own) and exit at once: the exit has to flush them."""

from __future__ import annotations

import logging
import os
import time

N = int(os.environ.get("BENCH_N", "1000"))

logger = logging.getLogger("bench.burst")
logger.setLevel(logging.INFO)
logger.propagate = False
logger.addHandler(logging.NullHandler())
started = time.perf_counter()
for i in range(N):
    logger.info("record %d of %d", i, N, extra={"tags": "RUNTIME"})
loop = time.perf_counter() - started

from _report import report  # noqa: E402

report(n=N, loop=loop, end=time.time())  # end: the component's exit, for the far-engine row
