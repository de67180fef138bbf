"""Resident memory of the component at a steady point (VmRSS from /proc).

``BENCH_N=0``: idle (after a short sleep, once the runner's threads are up).
``BENCH_N>0``: after logging that many records (no handler of its own), then a
pause for the runner's threads to settle; run with the Engine down, the queues
fill and the rest is dropped, so what is kept is bounded by the queue sizes.
Reports the parent's figures too (``parent_VmHWM``: under ``run-component`` the
parent is the runner, whose queues hold what the Engine did not take).
"""

from __future__ import annotations

import gc
import logging
import os
import time

N = int(os.environ.get("BENCH_N", "0"))
SETTLE = float(os.environ.get("BENCH_SETTLE", "0.5"))

if N:
    logger = logging.getLogger("bench.memory")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(logging.NullHandler())
    for i in range(N):
        logger.info("record %d of %d", i, N, extra={"tags": "RUNTIME"})
time.sleep(SETTLE)
gc.collect()

from _report import report, rss_kib  # noqa: E402

report(n=N, **rss_kib(), **{f"parent_{key}": value for key, value in rss_kib(os.getppid()).items()})
