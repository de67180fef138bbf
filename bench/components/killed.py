"""Log ``BENCH_N`` records, say so, then wait to be SIGKILLed: what reaches the Engine anyway?"""

from __future__ import annotations

import logging
import os
import sys
import time

N = int(os.environ.get("BENCH_N", "1000"))

logger = logging.getLogger("bench.killed")
logger.setLevel(logging.INFO)
logger.propagate = False
logger.addHandler(logging.NullHandler())
for i in range(N):
    logger.info("record %d of %d", i, N, extra={"tags": "RUNTIME"})
sys.stdout.write(f"logged {os.getpid()}\n")
sys.stdout.flush()
time.sleep(60)
