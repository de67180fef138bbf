"""Output as records, on request (``SPLIGHT_RUNNER_CAPTURE_OUTPUT=true``): ``print`` is how many log.

Each line a component writes to ``sys.stdout`` or ``sys.stderr`` outside
``logging`` becomes a record — stdout ``INFO``, stderr ``ERROR``, the logger
named after the stream — handed to the same sink as every other record. What a
logging handler writes is never taken a second time: the capture hook marks the
thread while the component's handlers run (:func:`.capture.in_handlers`), and
the record itself is already captured. A line that carriage returns rewrote (a
progress bar) becomes its last state, one record when it ends, not one per
step; a very long line is cut at :data:`MAX_LINE` characters with a marker. The
text still goes to the stream first, unchanged (:mod:`.streams`).
"""

from __future__ import annotations

import _thread  # not ``threading``: a component that starts no thread does not import it for us
import time

from . import capture, streams
from .values import valid_text
from .wire import LOG

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

#: Characters of one line kept in its record.
MAX_LINE = 8192
_CUT = f" … (line cut at {MAX_LINE} characters)"
_STREAMS = (("stdout", 20, "INFO"), ("stderr", 40, "ERROR"))


class _Lines:
    """One stream's partial line, turned into records line by line."""

    def __init__(self, name: str, levelno: int, levelname: str, submit: Callable[[tuple], None]) -> None:
        self._name = name
        self._levelno = levelno
        self._levelname = levelname
        self._submit = submit
        self._partial = ""
        self._lock = _thread.allocate_lock()

    def __call__(self, text: str) -> None:
        if capture.in_handlers():
            return
        # Never waits: a write from a signal handler that interrupted this one is not copied.
        if not self._lock.acquire(blocking=False):
            return
        try:
            lines = (self._partial + text).split("\n")
            self._partial = _last_state(lines.pop())[-MAX_LINE - 1 :]
        finally:
            self._lock.release()
        for line in lines:
            self._record(_last_state(line[:-1] if line.endswith("\r") else line))

    def flush(self) -> None:
        """The line not ended by a newline, at exit."""
        partial, self._partial = self._partial, ""
        if partial:
            self._record(partial)

    def _record(self, line: str) -> None:
        if not line.strip():
            return
        if len(line) > MAX_LINE:
            line = line[:MAX_LINE] + _CUT
        if not line.isascii():
            line = valid_text(line)
        self._submit(
            (LOG, self._name, self._levelno, self._levelname, line, "", 0, None, time.time(), None, None, None, 0, 0, 0)
        )


def _last_state(line: str) -> str:
    """What a terminal shows of a line rewritten with carriage returns: the text after the last one."""
    return line[line.rfind("\r") + 1 :] if "\r" in line else line


_installed: list[_Lines] = []


def install(submit: Callable[[tuple], None]) -> None:
    """Every line written to stdout and stderr outside ``logging`` becomes a record for ``submit``."""
    for name, levelno, levelname in _STREAMS:
        lines = _Lines(name, levelno, levelname, submit)
        _installed.append(lines)
        streams.copy(name, lines)


def flush() -> None:
    for lines in _installed:
        lines.flush()
