"""Sleep ``BENCH_SLEEP`` seconds and exit: a component with nothing to say (what it costs to wait)."""

from __future__ import annotations

import os
import time

time.sleep(float(os.environ.get("BENCH_SLEEP", "60")))

from _report import report  # noqa: E402

report(slept=float(os.environ.get("BENCH_SLEEP", "60")))
