"""The runner's own voice: one line on stderr, never routed through ``logging``.

Anything the runner says through ``logging`` would be captured and shipped as if
the component had said it, and could loop; so it writes here, prefixed.

Lines that can repeat (one per failed batch, one per bad request) go through
:func:`say_limited`: the first occurrence of a kind in full, then at most one
summary line per :data:`SUMMARY_INTERVAL` with the count of what was not said.
"""

from __future__ import annotations

import threading
import time

# The component side's voice, so that both sides sound the same (and a line said once is said once).
from splight_runner.bootstrap.splight_capture.voice import say, say_once

__all__ = ["say", "say_limited", "say_once"]

#: Seconds between summary lines of a repeating diagnostic.
SUMMARY_INTERVAL = 60.0

_lock = threading.Lock()
#: kind -> [time of the last line said, occurrences not said since]
_limited: dict[str, list[float]] = {}


def say_limited(kind: str, message: str) -> None:
    """The first ``kind`` in full; then one line a minute saying how many more there were, and the latest."""
    now = time.monotonic()
    with _lock:
        state = _limited.get(kind)
        if state is None:
            _limited[kind] = [now, 0]
        elif now - state[0] < SUMMARY_INTERVAL:
            state[1] += 1
            return
        else:
            skipped, elapsed = int(state[1]), now - state[0]
            state[0], state[1] = now, 0
            if skipped:
                message = f"{message} (and {skipped} more like it in the last {elapsed:.0f} s)"
    say(message)
