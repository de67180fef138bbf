"""The record that says how a component ended: one wording for both hosts of the pipeline.

The runner (``supervisor.ending``) knows every end — exit codes, signals, the OOM
killer — and attaches what the component last wrote to stderr; a component under
``opentelemetry-instrument`` knows its own exit code and ``SystemExit`` text
(``component.endings``). Both say it in the same words, as a record in the flat
layout that goes through the pipeline before the final status.
"""

from __future__ import annotations

import _signal as signal  # the C module: ``signal`` builds enums of every signal (and imports enum) at every start
import time

from splight_runner.bootstrap.splight_capture.wire import LOG

#: The runner's own logger name on the records it makes.
LOGGER = "splight_runner"


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.0f} MiB"


def how_it_ended(returncode: int, oom: tuple[bool, int | None] = (False, None)) -> str:
    """One sentence: the exit code, or the signal by name, and for a SIGKILL whether it was the OOM killer."""
    if returncode >= 0:
        return f"The component exited with code {returncode}."
    number = -returncode
    name = signal_name(number)
    described = signal.strsignal(number) or name
    if number != signal.SIGKILL:
        return f"The component was killed by {name} ({described})."
    killed, limit = oom
    if killed:
        where = f" (memory limit {_mib(limit)})" if limit else ""
        return f"The component was killed by SIGKILL: the kernel's OOM killer ended it, out of memory{where}."
    return "The component was killed by SIGKILL (not by the kernel's OOM killer)."


def signal_name(number: int) -> str:
    """``signal.Signals(number).name``: of a number's names (SIGABRT and SIGIOT), the first in order."""
    for name in sorted(dir(signal)):
        if name.startswith("SIG") and not name.startswith("SIG_") and getattr(signal, name) == number:
            return name
    return f"signal {number}"


def ending_record(message: str, output: str) -> tuple:
    """The flat record: ``message``, with ``output`` (what the component last wrote) as its traceback text."""
    if output:
        message += " What it last wrote to stderr is attached."
    exception = ("", "", output) if output else None
    return (LOG, LOGGER, 40, "ERROR", message, "", 0, None, time.time(), None, exception, None, 0, 0, 0)


def owes_last_words(returncode: int, stop_forwarded: bool) -> bool:
    """Every end but exit 0 or a stop the runner forwarded (or, in-process, the SIGTERM it handled)."""
    return returncode != 0 and not stop_forwarded
