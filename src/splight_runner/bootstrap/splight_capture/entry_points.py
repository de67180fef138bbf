"""Which entry points the component's environment declares, read from the dist-info files.

Importing ``importlib.metadata`` and letting it parse every distribution costs
more than the rest of the bootstrap on a slow machine; this look tells whether
upstream's loaders (instrumentors, the SDK's providers) would find anything.
"""

from __future__ import annotations

import os
import sys

_found = None  # type: Dict[str, Set[str]] | None


def declared() -> dict[str, set[str]]:
    """Installed entry point names by group (read once per process)."""
    global _found
    if _found is None:
        _found = _scan()
    return _found


def _scan() -> dict[str, set[str]]:
    found = {}  # type: Dict[str, Set[str]]
    seen = set()
    for entry in sys.path:
        folder = entry or os.curdir
        if folder in seen or not os.path.isdir(folder):
            continue
        seen.add(folder)
        try:
            children = os.listdir(folder)
        except OSError:
            continue
        for child in children:
            if not child.endswith((".dist-info", ".egg-info")):
                continue
            try:
                with open(os.path.join(folder, child, "entry_points.txt"), encoding="utf-8") as file:
                    text = file.read()
            except OSError:
                continue
            group = None
            for line in text.splitlines():
                line = line.strip()
                if line.startswith("[") and line.endswith("]"):
                    group = line[1:-1].strip()
                elif group is not None and "=" in line:
                    found.setdefault(group, set()).add(line.split("=", 1)[0].strip())
    return found
