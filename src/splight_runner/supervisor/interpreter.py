"""Which Python runs the component: the runner may live in an environment of its own.

The component's interpreter is the one whose environment has the component's
dependencies (splight-lib, its pins); the runner needs none of them, and the
component needs nothing of the runner's (the bootstrap is standard library
only). The rule, first match wins:

1. ``--python PY`` (``run-component``), else ``SPLIGHT_RUNNER_PYTHON``: a path,
   or a name looked up on ``PATH``.
2. The runner lives in an environment of its own — a virtualenv pipx made
   (``pipx install splight-runner``; pipx leaves ``pipx_metadata.json`` in it):
   the first ``python3`` (else ``python``) on ``PATH`` outside that environment,
   the Python a user gets by typing ``python3``.
3. Otherwise the runner's own interpreter: the runner was installed next to the
   component (``pip install splight-runner splight-lib``, today's images).

An environment of its own that pipx did not make (``/opt/splight-runner``) names
the component's interpreter with ``SPLIGHT_RUNNER_PYTHON``, as the image does.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from splight_runner import environment as names
from splight_runner.settings import ConfigError
from splight_runner.supervisor.spawn import which

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from splight_runner._tuples import NamedTuple

#: The file pipx writes at the root of every environment it makes.
PIPX_MARKER = "pipx_metadata.json"


class Interpreter(NamedTuple):
    path: str
    #: Why this one, in words (``check`` says it).
    why: str


def _runnable(candidate: str, where: str) -> str:
    path = candidate if os.sep in candidate else which(candidate)
    if path is None:
        raise ConfigError(f"{where}: {candidate}: no such command on PATH")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise ConfigError(f"{where}: {candidate}: not an executable file")
    return os.path.abspath(path)


def own_environment(prefix: str | None = None) -> bool:
    """True when the runner runs in a virtualenv pipx made for it."""
    prefix = sys.prefix if prefix is None else prefix
    return prefix != sys.base_prefix and os.path.isfile(os.path.join(prefix, PIPX_MARKER))


def _python_on_path(env: Mapping[str, str], outside: str) -> str | None:
    own = os.path.realpath(outside) + os.sep
    for name in ("python3", "python"):
        for folder in env.get("PATH", os.defpath).split(os.pathsep):
            candidate = os.path.join(folder or os.curdir, name)
            if not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
                continue
            if not os.path.realpath(os.path.abspath(folder or os.curdir)).startswith(own):
                return os.path.abspath(candidate)
    return None


def component_interpreter(option: str | None, env: Mapping[str, str]) -> Interpreter:
    """The interpreter to start the component with, by the rule above; a ConfigError names a bad choice."""
    if option:
        return Interpreter(_runnable(option, "--python"), "named by --python")
    named = (env.get(names.SPLIGHT_RUNNER_PYTHON) or "").strip()
    if named:
        return Interpreter(_runnable(named, names.SPLIGHT_RUNNER_PYTHON), f"named by {names.SPLIGHT_RUNNER_PYTHON}")
    if own_environment():
        found = _python_on_path(env, sys.prefix)
        if found is None:
            raise ConfigError(
                "the runner lives in an environment of its own (pipx) and no python3 is on PATH to run "
                f"the component: name one with --python or {names.SPLIGHT_RUNNER_PYTHON}"
            )
        return Interpreter(found, "the first python3 on PATH (the runner lives in a pipx environment of its own)")
    return Interpreter(sys.executable, "the runner's own interpreter (installed next to the component)")


#: Run by ``check`` in the component's interpreter: the bootstrap's own ``sitecustomize`` loads its package.
_PROBE = """
import platform, runpy, sys
print(platform.python_implementation(), platform.python_version(), flush=True)
runpy.run_path(sys.argv[1] + "/sitecustomize.py")["_load_capture"]()
from splight_capture import wire
print(wire.VERSION)
"""


def probe(interpreter: str, bootstrap_dir: str, timeout: float = 20.0) -> tuple[bool, str]:
    """Whether ``interpreter`` can load the bootstrap, and what it is (or why not), in words."""
    import subprocess

    try:
        done = subprocess.run(
            [interpreter, "-c", _PROBE, bootstrap_dir],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, names.PYTHONPATH: bootstrap_dir, names.SPLIGHT_RUNNER_ACTIVE: "0"},
        )
    except (OSError, subprocess.SubprocessError) as error:
        return False, f"cannot run it ({error})"
    words = done.stdout.split()
    if len(words) < 2:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return False, f"cannot run it ({last})"
    implementation, version = words[:2]
    if implementation != "CPython" or tuple(int(part) for part in version.split(".")[:2]) < (3, 8):
        return False, f"{implementation} {version}: the bootstrap captures in CPython 3.8 or newer only"
    if done.returncode != 0 or len(words) != 3:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return False, f"{implementation} {version}, cannot load the bootstrap ({last})"
    return True, f"{implementation} {version}, loads the bootstrap (channel format {words[2]})"
