"""Which entry points the component's environment declares, read from the dist-info files.

Importing ``importlib.metadata`` and letting it parse every distribution costs
more than the rest of the bootstrap on a slow machine; this look tells whether
upstream's loaders (instrumentors, the SDK's providers) would find anything.

Only OpenTelemetry's loaders read what is found here, and none of them can run
without an ``opentelemetry-*`` distribution (an instrumentor is loaded through
``opentelemetry-instrumentation``, the SDK's providers are the SDK's). So an
environment with none of them is answered from the folder listings alone,
without opening a file per distribution (the usual splight-lib environment:
about a millisecond of every start-up for a hundred distributions).
"""

from __future__ import annotations

import os
import sys

_found = None  # type: Dict[str, Set[str]] | None


def declared() -> dict[str, set[str]]:
    """Installed entry point names by group (read once per process; none without an OpenTelemetry distribution)."""
    global _found
    if _found is None:
        _found = _scan()
    return _found


def _scan() -> dict[str, set[str]]:
    found = {}  # type: Dict[str, Set[str]]
    metadata = []
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
        metadata.extend(os.path.join(folder, child) for child in children if child.endswith(_METADATA))
    if not any(os.path.basename(path).lower().startswith("opentelemetry") for path in metadata):
        return found
    for path in metadata:
        try:
            with open(os.path.join(path, "entry_points.txt"), encoding="utf-8") as file:
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


_METADATA = (".dist-info", ".egg-info")
