"""The runner's own voice: one line on stderr, never routed through ``logging``.

Anything the runner says through ``logging`` would be captured and shipped as if
the component had said it, and could loop; so it writes here, prefixed.
"""

from __future__ import annotations

import sys


def say(message: str) -> None:
    try:
        sys.stderr.write(f"splight-runner: {message}\n")
        sys.stderr.flush()
    except Exception:
        pass
