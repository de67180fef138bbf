"""A component that imports nothing: which modules did the runner's bootstrap load into it?

The heavy set (``BENCH_IMPORTS``) must not be among them: the bootstrap may only
bring OpenTelemetry and the standard library into a component's process.
"""

from __future__ import annotations

import os
import sys

heavy = os.environ.get("BENCH_IMPORTS", "pandas,numpy,pydantic,httpx,splight_lib").split(",")
loaded = sorted({name.split(".")[0] for name in sys.modules})
found = [name for name in heavy if name in sys.modules]

from _report import report  # noqa: E402

report(heavy_loaded=found, modules=len(sys.modules), top_level=loaded)
