"""What a ``run-component`` start-up imports: the runner's modules leave the heavy standard library alone.

The runner starts once per component; each module below cost it milliseconds
of CPU (enums built from every constant, patterns compiled at import, a parser
of mail headers) for work the runner does without them. Each has its place
where it is needed: ``json`` with the first record, ``ssl`` and ``socket`` for an
https Engine, ``argparse`` for a command line that is not the Engine's plain form.
"""

from __future__ import annotations

import subprocess
import sys

_START_UP = (
    "splight_runner.cli",
    "splight_runner.supervisor.launch",
    "splight_runner.supervisor.host",
    "splight_runner.pipeline.logs",
    "splight_runner.pipeline.dispatch",
    "splight_runner.pipeline.delivery",
    "splight_runner.engine.client",
)
_NOT_AT_START_UP = (
    "typing",
    "argparse",
    "http.client",
    "email",
    "ssl",
    "subprocess",
    "tempfile",
    "shutil",
    "urllib.request",
    "urllib.parse",
    "ipaddress",
    "ctypes",
    "json",
    "re",
    "enum",
    "socket",
    "signal",
    "logging",
    "random",
    "queue",
)


def test_the_runners_start_up_modules_import_none_of_the_heavy_ones() -> None:
    code = f"import sys, {', '.join(_START_UP)}; print(sorted(m for m in {_NOT_AT_START_UP!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
