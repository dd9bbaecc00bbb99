"""Process-wide settings for the reactor.

There is one obvious way to configure iodine from Python: the ``iodine.settings``
object, set before :func:`iodine.run` (``run`` itself takes ``threads`` and
``workers`` as a shortcut for the two settings people change most).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CallbackMode = Literal["inline", "threads"]

KIB = 1024
MIB = 1024 * KIB


@dataclass
class Settings:
    """What the reactor reads when :func:`iodine.run` starts.

    Attributes:
        threads: Size of the thread pool for blocking work (WSGI applications and,
            with ``callbacks="threads"``, plain handler callbacks). Eight threads
            keep a handful of blocking database calls from starving each other
            without the memory of gunicorn-style hundreds of threads.
        workers: Number of processes. Only 1 is available in this version.
        callbacks: Where plain (non-coroutine) handler callbacks run.
            ``"inline"`` (the default) calls them on the event loop, which is the
            fastest choice for light callbacks: the raw echo benchmark measures
            about three times the throughput of ``"threads"``, where each callback
            costs a hand-off to the pool and back. ``"threads"`` runs them on the
            thread pool, iodine's original model, so a callback may block without
            stalling any other connection. Coroutine callbacks always run on the
            loop; per-connection ordering holds in both modes.
        max_pending: Unsent bytes a connection may hold before it is closed as a
            slow consumer. 8 MiB lets a large response sit in the buffer while a
            peer on a slow link catches up, and still bounds memory.
        write_high_water: Unsent bytes above which iodine stops reading from a
            peer until it has drained what was written to it. 64 KiB is the
            default of asyncio and uvloop.
        shutdown_timeout: Seconds a graceful stop waits for connections to
            finish (``on_shutdown``, flushing) and for busy threads before it
            closes what is left.
        tune_malloc: On glibc, raise malloc's mmap and trim thresholds at
            start-up so that memory freed after a large read or request body
            is reused rather than given back to the kernel and faulted in
            again on the next one (see :mod:`iodine.core.memory`). A process
            then keeps up to 8 MiB of freed memory. Skipped when the
            environment sets ``MALLOC_TRIM_THRESHOLD_``,
            ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TOP_PAD_`` or a
            ``glibc.malloc`` tunable.
    """

    threads: int = 8
    workers: int = 1
    callbacks: CallbackMode = "inline"
    max_pending: int = 8 * MIB
    write_high_water: int = 64 * KIB
    shutdown_timeout: float = 10.0
    tune_malloc: bool = True

    def validate(self) -> None:
        """Raise ValueError naming the first setting that cannot work."""
        if not isinstance(self.threads, int) or self.threads < 1:
            raise ValueError(
                f"threads must be a whole number >= 1, not {self.threads!r}"
            )
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(
                f"workers must be a whole number >= 1, not {self.workers!r}"
            )
        if self.workers != 1:
            raise ValueError(
                "worker processes are not available in this version of iodine; "
                "run with workers=1"
            )
        if self.callbacks not in ("inline", "threads"):
            raise ValueError(
                f"callbacks must be 'inline' or 'threads', not {self.callbacks!r}"
            )
        if self.write_high_water < 1:
            raise ValueError("write_high_water must be at least 1 byte")
        if self.max_pending < self.write_high_water:
            raise ValueError("max_pending must be at least write_high_water")
        if self.shutdown_timeout < 0:
            raise ValueError("shutdown_timeout cannot be negative")
