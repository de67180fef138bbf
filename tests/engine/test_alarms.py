"""AlarmClock: every Engine call's deadline on one thread, which sleeps while no call is in flight."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from splight_runner.engine.alarms import AlarmClock

SRC = Path(__file__).resolve().parents[2] / "src"


def _threads_named(name: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == name]


def test_alarms_run_at_their_due_time_in_due_order_whatever_order_they_were_set_in() -> None:
    clock = AlarmClock("test-order")
    ran: list[tuple[str, float]] = []
    done = threading.Event()
    started = time.monotonic()

    def note(label: str) -> None:
        ran.append((label, time.monotonic() - started))
        if len(ran) == 3:
            done.set()

    clock.set(0.3, lambda: note("0.3"))
    clock.set(0.1, lambda: note("0.1"))
    clock.set(0.2, lambda: note("0.2"))

    assert done.wait(5)
    assert [label for label, _ in ran] == ["0.1", "0.2", "0.3"]
    assert all(at >= float(label) for label, at in ran)


def test_an_alarm_due_before_the_one_the_thread_sleeps_for_runs_on_time() -> None:
    clock = AlarmClock("test-earlier")
    ran = threading.Event()
    late = clock.set(30, lambda: None)
    time.sleep(0.05)  # the thread now sleeps until the 30 s alarm
    started = time.monotonic()

    clock.set(0.1, ran.set)

    assert ran.wait(5)
    assert time.monotonic() - started < 2
    assert late is not None
    late.cancel()


def test_a_cancelled_alarm_never_runs_and_cancelling_twice_or_after_it_ran_is_harmless() -> None:
    clock = AlarmClock("test-cancel")
    ran: list[str] = []
    after = threading.Event()
    cancelled = clock.set(0.1, lambda: ran.append("cancelled"))
    first = clock.set(0.05, lambda: ran.append("first"))
    assert cancelled is not None and first is not None
    cancelled.cancel()
    cancelled.cancel()
    clock.set(0.3, after.set)

    assert after.wait(5)
    first.cancel()
    assert ran == ["first"]


def test_a_failing_callback_does_not_stop_the_alarms_after_it() -> None:
    clock = AlarmClock("test-failing")
    ran = threading.Event()

    clock.set(0.01, lambda: 1 / 0)
    clock.set(0.05, ran.set)

    assert ran.wait(5)


def test_no_thread_until_the_first_alarm_then_one_for_all_of_them() -> None:
    name = "test-one-thread"
    clock = AlarmClock(name)
    assert _threads_named(name) == []

    alarms = [clock.set(10 + n, lambda: None) for n in range(20)]

    assert len(_threads_named(name)) == 1
    for alarm in alarms:
        assert alarm is not None
        alarm.cancel()


def test_the_thread_does_not_wake_while_no_alarm_is_set() -> None:
    name = "test-asleep"
    clock = AlarmClock(name)
    done = threading.Event()
    clock.set(0.01, done.set)
    assert done.wait(5)
    pending = clock.set(0.05, lambda: None)
    assert pending is not None
    pending.cancel()
    (thread,) = _threads_named(name)
    status = Path(f"/proc/self/task/{thread.native_id}/status")

    def switches() -> int:
        lines = status.read_text().splitlines()
        return sum(int(line.split()[1]) for line in lines if "ctxt_switches" in line)

    before = switches()
    for _ in range(50):  # let it settle after the cancel's wake-up, however busy the machine
        time.sleep(0.1)
        now, before = before, switches()
        if now == before:
            break
    time.sleep(0.5)

    assert switches() == before


def test_a_child_forked_while_the_clock_was_locked_gets_a_clock_of_its_own(tmp_path: Path) -> None:
    script = tmp_path / "fork.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys, threading
            from splight_runner.engine.alarms import AlarmClock

            clock = AlarmClock("forked")
            clock.set(30, lambda: None)  # the parent's thread exists and sleeps
            with clock._changed:  # held at the fork: the child's copy of it would never be released
                pid = os.fork()
            if pid == 0:
                ran = threading.Event()
                clock.set(0.05, ran.set)
                os._exit(0 if ran.wait(5) else 3)
            _, status = os.waitpid(pid, 0)
            sys.exit(os.waitstatus_to_exitcode(status))
            """
        )
    )

    done = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", str(script)],
        env={"PYTHONPATH": str(SRC)},
        timeout=30,
        capture_output=True,
        text=True,
    )

    assert done.returncode == 0, done.stderr
