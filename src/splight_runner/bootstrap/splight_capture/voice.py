"""The runner's voice inside the component: one line on stderr, never through ``logging``.

Anything said through ``logging`` would be captured and shipped as if the
component had said it, and could loop. The runner's own process says its lines
through the same two functions (``splight_runner.diagnostics``), so both sides
sound the same.
"""

from __future__ import annotations

import _thread  # not ``threading``: a component that starts no thread does not import it for us
import sys

PREFIX = "splight-runner: "

_lock = _thread.allocate_lock()
_said_once = set()  # type: set[str]


def say(message: str) -> None:
    try:
        sys.stderr.write(PREFIX + message + "\n")
        sys.stderr.flush()
    except Exception:
        pass


def say_once(message: str) -> None:
    """``message`` the first time only (per process)."""
    with _lock:
        if message in _said_once:
            return
        _said_once.add(message)
    say(message)
