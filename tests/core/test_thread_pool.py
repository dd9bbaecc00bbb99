"""The thread pool: every job runs once, a backlog spreads over the threads,
jobs queued from the loop are batched, and shutdown lets queued work finish."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from iodine.core.threads import ThreadPool

WAIT = 5.0


@pytest.fixture
def pool() -> ThreadPool:
    return ThreadPool(4)


def test_every_job_runs_once_and_one_thread_keeps_their_order() -> None:
    single = ThreadPool(1)
    single.start()
    done: list[int] = []
    for number in range(2000):
        single.submit(done.append, number)
    assert single.shutdown(WAIT)
    assert done == list(range(2000))


def test_jobs_that_block_each_get_their_own_thread(pool: ThreadPool) -> None:
    # Each job waits until all four run at once. Only one idle thread is
    # woken per batch of work; the one that takes a job wakes the next.
    # Without that relay the other three jobs would wait behind the first.
    pool.start()
    barrier = threading.Barrier(4)
    met: list[bool] = []

    def job() -> None:
        barrier.wait(WAIT)
        met.append(True)

    for _ in range(4):
        pool.submit(job)
    assert pool.shutdown(WAIT)
    assert met == [True] * 4


async def test_jobs_queued_from_the_loop_run_after_its_callbacks(
    pool: ThreadPool,
) -> None:
    pool.start()
    barrier = threading.Barrier(4)
    names: set[str] = set()
    finished = asyncio.Event()
    loop = asyncio.get_running_loop()

    def job() -> None:
        barrier.wait(WAIT)
        names.add(threading.current_thread().name)
        if len(names) == 4:
            loop.call_soon_threadsafe(finished.set)

    for _ in range(4):
        pool.queue(job)
    await asyncio.wait_for(finished.wait(), WAIT)
    assert len(names) == 4
    assert await asyncio.to_thread(pool.shutdown, WAIT)


async def test_a_queued_job_is_not_started_before_the_loop_runs_again(
    pool: ThreadPool,
) -> None:
    # The wake-up waits for the loop's next turn: what the loop does in
    # the same callback never races with a thread started by queue().
    pool.start()
    ran = threading.Event()
    pool.queue(ran.set)
    time.sleep(0.2)  # blocks the loop, as a long callback would
    assert not ran.is_set()
    await asyncio.to_thread(ran.wait, WAIT)
    assert ran.is_set()
    assert await asyncio.to_thread(pool.shutdown, WAIT)


def test_shutdown_runs_the_queued_jobs_first(pool: ThreadPool) -> None:
    pool.start()
    gate = threading.Event()
    done: list[int] = []
    pool.submit(gate.wait, WAIT)
    for number in range(10):
        pool.submit(done.append, number)
    gate.set()
    assert pool.shutdown(WAIT)
    assert sorted(done) == list(range(10))
    assert not pool.is_running


def test_shutdown_gives_up_on_a_stuck_job() -> None:
    pool = ThreadPool(1)
    pool.start()
    release = threading.Event()
    pool.submit(release.wait, WAIT)
    started = time.monotonic()
    assert not pool.shutdown(0.2)
    assert time.monotonic() - started < 2.0
    release.set()


def test_a_failing_job_is_logged_and_the_thread_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = ThreadPool(1)
    pool.start()
    done = threading.Event()

    def fail() -> None:
        raise ValueError("job failed")

    pool.submit(fail)
    pool.submit(done.set)
    assert done.wait(WAIT)
    assert pool.shutdown(WAIT)
    assert "Unhandled error in a thread pool job." in caplog.text
    assert "job failed" in caplog.text
