"""Time the component spends importing a heavy set (what a splight-lib component imports first).

``BENCH_IMPORTS`` (comma-separated) overrides the set. The runner must not make
these imports slower (it could, by importing part of them itself in an
incompatible way, or by holding the GIL on its threads while they run).
"""

from __future__ import annotations

import importlib
import os
import time

MODULES = os.environ.get("BENCH_IMPORTS", "pandas,numpy,pydantic,httpx,splight_lib").split(",")

started = time.perf_counter()
for name in MODULES:
    importlib.import_module(name)
elapsed = time.perf_counter() - started

from _report import report  # noqa: E402 - after the measured part on purpose

report(seconds=elapsed, modules=MODULES)
