"""The parent-death signal (Linux): a program the runner started ends when the runner dies.

Written once for the two places that ask for it: the bootstrap, first thing in
a component the runner spawned (``sitecustomize`` loads this file on its own,
before the rest of the package and before it knows which interpreter it runs
on), and the runner, in the child of a fork, before it execs a program that has
no bootstrap. So: standard library only, no syntax newer than Python 3.6, and
no annotations, as in ``sitecustomize``.
"""

import os

try:
    from _signal import SIGTERM  # not ``signal``: it builds enums of every signal at import
except ImportError:
    SIGTERM = 15

PR_SET_PDEATHSIG = 1


def prctl_function():
    """libc's ``prctl`` (Python has no binding) as ``prctl(option, value)``, None where there is none.

    Through ``_ctypes``' own ``dlopen``, ``dlsym`` and ``call_function`` (what
    ``ctypes`` calls underneath) when it has them: ``import ctypes`` builds its
    type classes, milliseconds of start-up; ``ctypes`` is the fallback.
    """
    try:
        import _ctypes

        function = _ctypes.dlsym(_ctypes.dlopen(None, os.RTLD_NOW), "prctl")
        call = _ctypes.call_function
        return lambda option, value: call(function, (option, value))
    except (ImportError, AttributeError, OSError):
        pass
    try:
        import ctypes

        return ctypes.CDLL(None).prctl
    except (ImportError, AttributeError, OSError):
        return None


def follow(runner, prctl=None):
    """Ask for SIGTERM when process ``runner``, this one's parent, dies; SIGTERM now if it already has.

    The check comes after the request: a runner that dies between the two is
    seen either way. False where the signal cannot be asked for.
    """
    if prctl is None:
        prctl = prctl_function()
        if prctl is None:
            return False
    prctl(PR_SET_PDEATHSIG, SIGTERM)
    if os.getppid() != runner:
        os.kill(os.getpid(), SIGTERM)
    return True
