"""The thread pool for blocking work.

A pool of plain threads reading jobs from one ``queue.SimpleQueue``. It is leaner
than ``concurrent.futures.ThreadPoolExecutor`` on the path that matters here
(no Future per job, a C-implemented queue) and callers that need a result, such as
a connection waiting for its callback, hand it back to the loop themselves.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Any

logger = logging.getLogger("iodine.core")

_STOP = object()


class ThreadPool:
    """A fixed number of daemon threads that run submitted callables in order."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._jobs: SimpleQueue[Any] = SimpleQueue()
        self._threads: list[threading.Thread] = []

    @property
    def is_running(self) -> bool:
        return bool(self._threads)

    def start(self) -> None:
        if self._threads:
            return
        for number in range(1, self.size + 1):
            thread = threading.Thread(
                target=self._work, name=f"iodine-thread-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def submit(self, fn: Callable[..., object], *args: object) -> None:
        """Queue ``fn(*args)``; an exception it raises is logged, not propagated."""
        self._jobs.put((fn, args))

    def shutdown(self, timeout: float) -> bool:
        """Let queued jobs finish, then stop the threads.

        Returns False if some thread was still busy when ``timeout`` ran out; the
        threads are daemons, so a stuck job cannot keep the process alive.
        """
        for _ in self._threads:
            self._jobs.put(_STOP)
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
        # Jobs queued behind the stop markers would otherwise run in a later pool.
        while True:
            try:
                self._jobs.get_nowait()
            except Empty:
                break
        return stopped

    def _work(self) -> None:
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is _STOP:
                return
            fn, args = job
            try:
                fn(*args)
            except BaseException:
                logger.exception("Unhandled error in a thread pool job.")
            # An idle thread waits in jobs.get() with these still bound: drop
            # them, or each idle thread keeps its last job's objects (a whole
            # finished request, with its connection) alive until the next one.
            del job, fn, args
