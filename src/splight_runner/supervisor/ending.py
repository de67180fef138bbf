"""How the component ended, in words, for the record the runner sends before the final status.

A user reads the platform, not the container's stderr: after any end but exit 0
or a stop the runner forwarded, they get one record saying how it ended — the
exit code, or the signal by name; for a SIGKILL whether the kernel's OOM killer
did it (and the memory limit, when it can be read) — and what the component last
wrote to its stderr (kept by the bootstrap, see ``splight_capture.tail``).

The OOM killer is told apart from any other SIGKILL by the memory cgroup's own
count of OOM kills (cgroup v2 ``memory.events``, v1 ``memory.oom_control``),
read when the component's processes are first seen and again at the end: a
container's limit puts the runner and the component in one cgroup, and a
component moved into a cgroup of its own is seen there when it connects.
"""

from __future__ import annotations

import os

from splight_runner.bootstrap.splight_capture import tail
from splight_runner.pipeline.ending import ending_record, how_it_ended

#: What of the stderr tail goes into the record.
MAX_LINES = 50
_CGROUP_ROOT = "/sys/fs/cgroup"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            return file.read()
    except OSError:
        return None


def _memory_cgroup(pid: int) -> str | None:
    """The folder of ``pid``'s memory cgroup (v1 ``memory`` controller, else v2), None when unknown."""
    text = _read(f"/proc/{pid}/cgroup")
    if text is None:
        return None
    v1 = v2 = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if "memory" in parts[1].split(","):
            v1 = parts[2]
        elif parts[0] == "0" and parts[1] == "":
            v2 = parts[2]
    for base, relative, probe in (
        (os.path.join(_CGROUP_ROOT, "memory"), v1, "memory.oom_control"),
        (_CGROUP_ROOT, v2, "memory.events"),
    ):
        if relative is None:
            continue
        # Without a cgroup namespace the path is the host's; inside one, the mount is the cgroup itself.
        for folder in (base + relative.rstrip("/"), base):
            if os.path.isfile(os.path.join(folder, probe)):
                return folder
    return None


def _oom_kills(folder: str) -> int | None:
    for name in ("memory.events", "memory.oom_control"):
        text = _read(os.path.join(folder, name))
        if text is None:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
    return None


def _limit(folder: str) -> int | None:
    for name in ("memory.max", "memory.limit_in_bytes"):
        text = _read(os.path.join(folder, name))
        if text is None:
            continue
        value = text.strip()
        # v2 says "max"; v1 says a page-rounded huge number when unlimited.
        return int(value) if value.isdigit() and int(value) < (1 << 62) else None
    return None


class OomWatch:
    """The OOM kill counts of the memory cgroups the component's processes were seen in."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def track(self, pid: int) -> None:
        folder = _memory_cgroup(pid)
        if folder is not None and folder not in self._seen:
            count = _oom_kills(folder)
            if count is not None:
                self._seen[folder] = count

    def killed(self) -> tuple[bool, int | None]:
        """Whether the OOM killer killed in one of those cgroups since, and that cgroup's limit."""
        for folder, before in list(self._seen.items()):
            now = _oom_kills(folder)
            if now is not None and now > before:
                return True, _limit(folder)
        return False, None


def _top_process(folder: str) -> int | None:
    """The pid whose tail is in ``folder``: only the component's top process keeps one."""
    found = []
    for name in os.listdir(folder) if os.path.isdir(folder) else ():
        pid = name[len(tail.STDERR_PREFIX) :] if name.startswith(tail.STDERR_PREFIX) else ""
        if pid.isdigit():
            found.append((os.path.getmtime(os.path.join(folder, name)), int(pid)))
    return max(found)[1] if found else None


def _without_our_threads(fault: str) -> str:
    """``faulthandler``'s dump without the stacks of the bootstrap's own threads (the channel's timer)."""
    blocks = fault.split("\n\n")
    kept = [
        block
        for block in blocks
        if not (
            block.lstrip().startswith("Thread ")
            and any(f"{os.sep}splight_capture{os.sep}" in line for line in block.splitlines())
        )
    ]
    return "\n\n".join(kept)


_TRACEBACK = "Traceback (most recent call last):"


def _without_the_report(text: str, shipped: str) -> str:
    """``text`` without Python's report of the uncaught exception whose traceback was shipped.

    The report is the last thing the component wrote, and may not match the
    shipped text byte for byte (3.11+ carets, a ``str()`` that failed, colours):
    it is cut from the header of its first chained traceback to the end.
    """
    headers = shipped.count(_TRACEBACK)
    lines = text.splitlines(keepends=True)
    starts = [index for index, line in enumerate(lines) if line.rstrip("\n") == _TRACEBACK]
    if not headers or len(starts) < headers:
        return text.replace(shipped.rstrip("\n"), "")
    return "".join(lines[: starts[-headers]])


def last_output(folder: str, shipped_traceback: str | None) -> str:
    """What the component's top process last wrote to stderr, and its fatal-error stack if it had one.

    A traceback already shipped as a record (an uncaught exception) is left out:
    the user reads it once.
    """
    pid = _top_process(folder)
    if pid is None:
        return ""
    text = tail.read_ring(tail.stderr_file(folder, pid)).decode("utf-8", "replace")
    if shipped_traceback:
        text = _without_the_report(text, shipped_traceback)
    lines = text.splitlines()[-MAX_LINES:]
    fault = _without_our_threads(_read(tail.fault_file(folder, pid)) or "").strip()
    if fault:
        lines += ["", *fault.splitlines()[-MAX_LINES:]] if lines else fault.splitlines()[-MAX_LINES:]
    return "\n".join(lines).strip("\n")


def last_words(returncode: int, folder: str, oom: tuple[bool, int | None], shipped: str | None) -> tuple:
    """The flat record saying how the component ended and what it last wrote."""
    return ending_record(how_it_ended(returncode, oom), last_output(folder, shipped))
