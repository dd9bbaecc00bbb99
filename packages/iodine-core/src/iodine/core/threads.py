"""The thread pool for blocking work.

Jobs wait in one deque; idle threads sleep, each on a lock of its own. Two
things keep the handing over of work cheap when the loop and the threads
share one core and one GIL:

* **One thread woken at a time.** Waking a thread costs a context switch, and
  a woken thread that finds the work already taken costs another. Only one
  thread is ever on its way to work; once it has a job it wakes the next if
  jobs are left, so a backlog still spreads over every thread while they
  block (on a database, say), and a backlog of quick jobs is eaten by the
  threads already running instead of a crowd of newly woken ones.
* **Jobs from the loop go in a batch.** :meth:`ThreadPool.queue` adds the job
  at once but wakes a thread only after the loop has run the rest of its
  ready callbacks, so the requests read in one loop iteration cost one wake
  between them instead of one each.

There is no Future per job; callers that need a result, such as a connection
waiting for its callback, hand it back to the loop themselves.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from _thread import LockType, allocate_lock
from collections import deque
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("iodine.core")

_STOP = object()


class ThreadPool:
    """A fixed number of daemon threads that run submitted callables in order."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._threads: list[threading.Thread] = []
        self._jobs: deque[Any] = deque()
        self._lock = allocate_lock()
        # The locks of idle threads, most recently idle last: a thread that
        # just worked is woken first, its memory still warm.
        self._idle: list[LockType] = []
        # A thread has been woken and has not yet looked for a job.
        self._waking = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_scheduled = False

    @property
    def is_running(self) -> bool:
        return bool(self._threads)

    def start(self) -> None:
        """Start the threads; called from the loop that will :meth:`queue` jobs."""
        if self._threads:
            return
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        for number in range(1, self.size + 1):
            thread = threading.Thread(
                target=self._work, name=f"iodine-thread-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def submit(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` on a pool thread, from any thread.

        An exception it raises is logged, not propagated.
        """
        with self._lock:
            self._jobs.append((fn, args))
            self._wake_one()

    def queue(self, fn: Callable[..., object], *args: object) -> None:
        """Like :meth:`submit`, from the loop's thread only, waking a thread
        once the loop has run its other ready callbacks (see the module's
        docstring). A thread that is already working takes it sooner."""
        with self._lock:
            self._jobs.append((fn, args))
        if not self._wake_scheduled and self._loop is not None:
            self._wake_scheduled = True
            self._loop.call_soon(self._wake_for_queued)

    def _wake_for_queued(self) -> None:
        self._wake_scheduled = False
        with self._lock:
            self._wake_one()

    def _wake_one(self) -> None:
        # Called with the lock held.
        if self._jobs and self._idle and not self._waking:
            self._waking = True
            self._idle.pop().release()

    def shutdown(self, timeout: float) -> bool:
        """Let queued jobs finish, then stop the threads.

        Returns False if some thread was still busy when ``timeout`` ran out; the
        threads are daemons, so a stuck job cannot keep the process alive.
        """
        with self._lock:
            self._jobs.extend([_STOP] * len(self._threads))
            self._wake_one()
        deadline = time.monotonic() + timeout
        stopped = True
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            stopped = stopped and not thread.is_alive()
        self._threads.clear()
        if not stopped:
            logger.warning(
                "Thread pool still busy after %.1f s; leaving its threads behind.",
                timeout,
            )
        # Jobs queued behind the stop markers would otherwise run in a later
        # pool; threads left behind are no longer told to do anything.
        with self._lock:
            self._jobs.clear()
            self._idle.clear()
            self._waking = False
        return stopped

    def _work(self) -> None:
        lock = self._lock
        jobs = self._jobs
        idle = self._idle
        wake = allocate_lock()
        wake.acquire()
        while True:
            with lock:
                if not jobs:
                    idle.append(wake)
                    lock.release()
                    try:
                        wake.acquire()  # until _wake_one releases it
                    finally:
                        lock.acquire()
                    self._waking = False
                    if not jobs:
                        continue  # another thread took the work meanwhile
                job = jobs.popleft()
                # More work than this thread: pass the baton on.
                self._wake_one()
            if job is _STOP:
                return
            fn, args = job
            try:
                fn(*args)
            except BaseException:
                logger.exception("Unhandled error in a thread pool job.")
            # An idle thread waits with these still bound: drop them, or
            # each idle thread keeps its last job's objects (a whole
            # finished request, with its connection) alive until the next.
            del job, fn, args
