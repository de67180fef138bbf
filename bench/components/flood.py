"""Log ``BENCH_N`` records as fast as possible (no handler of its own), then exit.

Reports the wall-clock time (``time.time()``) of the first record, so the harness
can measure from there to the moment the Engine has them all.
"""

from __future__ import annotations

import logging
import os
import time

N = int(os.environ.get("BENCH_N", "200000"))

logger = logging.getLogger("bench.flood")
logger.setLevel(logging.INFO)
logger.propagate = False
logger.addHandler(logging.NullHandler())
info = logger.info
first = time.time()
for i in range(N):
    info("record %d of %d", i, N)
last = time.time()

from _report import report  # noqa: E402

report(n=N, first=first, last=last)
