"""ExitDeadline: the exit's one deadline, which a stop signal may bring forward, never push back."""

from __future__ import annotations

import threading
import time

from splight_runner.pipeline.deadline import ExitDeadline


def test_it_only_moves_closer_and_tells_its_listeners_each_time() -> None:
    now = time.monotonic()
    deadline = ExitDeadline(now + 10)
    heard: list[float] = []
    deadline.on_change(heard.append)
    deadline.bring_forward(now + 20)
    deadline.bring_forward(now + 5)
    deadline.bring_forward(now + 7)
    assert deadline() == deadline.at == now + 5
    assert heard == [now + 5]


def test_a_wait_ends_at_the_new_time_when_another_thread_brings_it_forward() -> None:
    deadline = ExitDeadline(time.monotonic() + 30)
    never = threading.Event()
    threading.Timer(0.2, lambda: deadline.bring_forward(time.monotonic() + 0.2)).start()
    started = time.monotonic()
    assert deadline.wait(never.wait) is False
    assert 0.35 < time.monotonic() - started < 1.0
    assert deadline.passed() and deadline.remaining() == 0


def test_a_wait_that_is_met_returns_true_at_once() -> None:
    deadline = ExitDeadline(time.monotonic() + 30)
    done = threading.Event()
    done.set()
    assert deadline.wait(done.wait) is True
    worker = threading.Thread(target=time.sleep, args=(0.1,))
    worker.start()
    assert deadline.join(worker) is True
