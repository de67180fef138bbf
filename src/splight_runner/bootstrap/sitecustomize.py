"""Bootstrap put first on the component's PYTHONPATH by splight-runner.

Python imports only the first ``sitecustomize`` on ``sys.path``; being first, this
one runs the one that would have run otherwise, then starts capture when the
runner activated it. It and its package ``splight_capture`` beside it use the
standard library only, so the component's environment needs nothing of the
runner's. Written for any CPython (no syntax newer than 3.6 in this file): an
interpreter the package does not support gets one line, never an error.
Nothing here may stop the component from starting.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _say(message):
    try:
        sys.stderr.write("splight-runner: " + message + "\n")
        sys.stderr.flush()
    except Exception:
        pass


# The import system's own halves are loaded before any site code runs; ``importlib.machinery``
# and ``importlib.util`` re-export what is used here, and importing them costs a bare start-up a
# fifth more (contextlib, collections, functools, warnings). Elsewhere than CPython: importlib.
try:
    from _frozen_importlib import module_from_spec
    from _frozen_importlib_external import PathFinder, spec_from_file_location
except ImportError:
    from importlib.machinery import PathFinder
    from importlib.util import module_from_spec, spec_from_file_location


def _run_shadowed_sitecustomize():
    path = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != _HERE]
    spec = PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        # What site.py itself prints for a failing sitecustomize.
        sys.stderr.write(
            "Error in sitecustomize; set PYTHONVERBOSE for traceback:\n%s: %s\n" % (type(error).__name__, error)
        )


def _load_capture():
    """The package beside this file, by its path: never another ``splight_capture`` on ``sys.path``."""
    folder = os.path.join(_HERE, "splight_capture")
    spec = spec_from_file_location(
        "splight_capture", os.path.join(folder, "__init__.py"), submodule_search_locations=[folder]
    )
    package = module_from_spec(spec)
    sys.modules["splight_capture"] = package
    spec.loader.exec_module(package)
    from splight_capture import startup

    return startup


def _follow_the_runner():
    """Ask the kernel for SIGTERM when the runner dies (Linux's parent-death signal).

    The runner starts the component with ``posix_spawn``, where none of its own
    code runs between fork and exec (what makes the start cheap), so the request
    is made here, before anything else (``splight_capture/parent.py``, loaded on
    its own). The runner's pid comes in ``SPLIGHT_RUNNER_PARENT``, removed at
    once: no child of the component may ask on its behalf.
    """
    runner = os.environ.pop("SPLIGHT_RUNNER_PARENT", None)  # names.SPLIGHT_RUNNER_PARENT, spelled out
    if runner is None:
        return
    spec = spec_from_file_location("_splight_runner_parent", os.path.join(_HERE, "splight_capture", "parent.py"))
    parent = module_from_spec(spec)
    spec.loader.exec_module(parent)
    parent.follow(int(runner))


def _main():
    try:
        _follow_the_runner()
    except Exception:
        pass
    try:
        _run_shadowed_sitecustomize()
    except Exception:
        pass
    # The component's sys.path is its own: the bootstrap folder was only the way in.
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != _HERE]
    # SPLIGHT_RUNNER_ACTIVE, spelled out: nothing is imported unless the runner set it.
    if os.environ.get("SPLIGHT_RUNNER_ACTIVE") != "1":
        return
    implementation = getattr(getattr(sys, "implementation", None), "name", "python")
    if implementation != "cpython" or sys.version_info < (3, 8):
        _say(
            "this interpreter (%s %s) is not one splight-runner captures in (CPython 3.8 or newer); "
            "the component runs unshipped" % (implementation, sys.version.split()[0])
        )
        return
    try:
        startup = _load_capture()
    except Exception as error:
        _say("bootstrap unavailable, the component runs unshipped (%s: %s)" % (type(error).__name__, error))
        return
    startup.start()


_main()
