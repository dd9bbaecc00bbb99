"""Timers and deferred calls: firing, repeating, cancelling."""

from __future__ import annotations

import threading
import time

from iodine import Reactor

from .conftest import Runner, wait_for


def test_run_after_fires_once(reactor: Reactor, runner: Runner) -> None:
    fired: list[float] = []
    start = time.monotonic()
    timer = reactor.run_after(100, lambda: fired.append(time.monotonic() - start))
    runner.start()
    wait_for(lambda: fired)
    time.sleep(0.2)
    assert len(fired) == 1
    assert fired[0] >= 0.09
    assert not timer.is_active


def test_run_every_with_repetitions(reactor: Reactor, runner: Runner) -> None:
    ticks: list[int] = []
    timer = reactor.run_every(20, lambda: ticks.append(1), repetitions=3)
    runner.start()
    wait_for(lambda: len(ticks) == 3)
    time.sleep(0.1)
    assert len(ticks) == 3
    assert timer.runs == 3
    assert not timer.is_active


def test_cancel_before_it_fires(reactor: Reactor, runner: Runner) -> None:
    fired: list[int] = []
    timer = reactor.run_after(50, lambda: fired.append(1))
    timer.cancel()
    runner.start()
    time.sleep(0.2)
    assert fired == []
    assert timer.cancelled


def test_cancel_repeating_timer_from_another_thread(
    reactor: Reactor, runner: Runner
) -> None:
    ticks: list[int] = []
    runner.start()
    timer = reactor.run_every(10, lambda: ticks.append(1))
    wait_for(lambda: len(ticks) >= 3)
    canceller = threading.Thread(target=timer.cancel)
    canceller.start()
    canceller.join()
    time.sleep(0.05)  # a tick already on its way may still land
    count = len(ticks)
    time.sleep(0.1)
    assert len(ticks) == count
    assert not timer.is_active


def test_timer_can_cancel_itself(reactor: Reactor, runner: Runner) -> None:
    ticks: list[int] = []

    def tick() -> None:
        ticks.append(1)
        if len(ticks) == 2:
            timer.cancel()

    timer = reactor.run_every(10, tick)
    runner.start()
    wait_for(lambda: len(ticks) == 2)
    time.sleep(0.1)
    assert len(ticks) == 2


def test_defer_and_coroutine_callbacks(reactor: Reactor, runner: Runner) -> None:
    calls: list[str] = []

    async def later() -> None:
        calls.append("coroutine")

    reactor.defer(lambda: calls.append("deferred"))
    reactor.run_after(10, later)
    runner.start()
    wait_for(lambda: len(calls) == 2)
    assert calls == ["deferred", "coroutine"]


def test_timer_callback_that_raises_keeps_repeating(
    reactor: Reactor, runner: Runner
) -> None:
    ticks: list[int] = []

    def flaky() -> None:
        ticks.append(1)
        raise RuntimeError("tick failed")

    reactor.run_every(10, flaky, repetitions=3)
    runner.start()
    wait_for(lambda: len(ticks) == 3)


def test_timers_on_the_thread_pool(reactor: Reactor, runner: Runner) -> None:
    reactor.settings.callbacks = "threads"
    names: list[str] = []
    reactor.run_after(1, lambda: names.append(threading.current_thread().name))
    runner.start()
    wait_for(lambda: names)
    assert names[0].startswith("iodine-thread-")


def test_stop_cancels_pending_timers(reactor: Reactor, runner: Runner) -> None:
    timer = reactor.run_after(60_000, lambda: None)
    runner.start()
    runner.stop()
    assert timer.cancelled
