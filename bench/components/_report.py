"""How a benchmark component reports what it measured: one JSON line on stdout.

Kept in its own tiny module (stdlib only, imported after the measured part) so
reporting adds nothing to what the component imports before it measures.
"""

from __future__ import annotations

import json
import sys
from typing import Any

RESULT_PREFIX = "BENCH_RESULT "


def report(**values: Any) -> None:
    """Print the result line the harness looks for, and flush it before any exit path."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(values) + "\n")
    sys.stdout.flush()


def rss_kib(pid: int | None = None) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of this process (or ``pid``), from /proc (Linux), in KiB."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid or 'self'}/status", encoding="ascii") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values
