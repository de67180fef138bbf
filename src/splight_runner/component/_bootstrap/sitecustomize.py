"""Bootstrap put first on the component's PYTHONPATH by the supervisor.

Python imports only the first ``sitecustomize`` on ``sys.path``; being first, this
one runs the one that would have run otherwise, then sets the distro up when the
runner activated it. Nothing here may stop the component from starting.
"""

import contextlib
import os
import sys


def _run_shadowed_sitecustomize() -> None:
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    path = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        # What site.py itself prints for a failing sitecustomize.
        sys.stderr.write(f"Error in sitecustomize; set PYTHONVERBOSE for traceback:\n{type(error).__name__}: {error}\n")


def _main() -> None:
    with contextlib.suppress(Exception):
        _run_shadowed_sitecustomize()
    # environment.SPLIGHT_RUNNER_ACTIVE, spelled out: nothing of the runner is imported unless it is set.
    if os.environ.get("SPLIGHT_RUNNER_ACTIVE") == "1":
        try:
            from splight_runner.component.startup import start
        except Exception as error:
            sys.stderr.write(f"splight-runner: bootstrap unavailable, the component runs unshipped ({error})\n")
            return
        start()


_main()
