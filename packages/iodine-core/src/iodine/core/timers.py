"""Timers and deferred tasks: ``run_after``, ``run_every`` and ``defer``.

Every one of them returns a :class:`Timer` that can be cancelled, before or after
the reactor starts and from any thread (Ruby iodine's timers cannot be cancelled).
A timer made before :func:`iodine.run` starts counting when the reactor starts.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from iodine.core.reactor import Reactor


class Timer:
    """A scheduled callback; ``cancel()`` stops it from running again."""

    __slots__ = (
        "_fn",
        "_handle",
        "_interval",
        "_lock",
        "_reactor",
        "_remaining",
        "cancelled",
        "runs",
    )

    def __init__(
        self,
        reactor: Reactor,
        fn: Callable[[], Any],
        interval: float,
        repetitions: int | None,
    ) -> None:
        self._reactor = reactor
        self._fn = fn
        self._interval = interval
        # None repeats forever; a count says how many runs are left.
        self._remaining = repetitions
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._lock = threading.Lock()
        self.cancelled = False
        self.runs = 0

    @property
    def is_active(self) -> bool:
        """True while the timer will still run at least once more."""
        return not self.cancelled and self._remaining != 0

    def cancel(self) -> None:
        """Stop the timer. Safe from any thread and more than once."""
        with self._lock:
            if self.cancelled:
                return
            self.cancelled = True
            handle = self._handle
            self._handle = None
        self._reactor.forget_timer(self)
        if handle is not None:
            # TimerHandle.cancel only flips a flag the loop checks, so it is
            # safe to call from another thread.
            handle.cancel()

    def schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        """Arm the timer on ``loop``; called on the loop thread."""
        with self._lock:
            if self.cancelled or self._remaining == 0:
                return
            if self._interval <= 0:
                self._handle = loop.call_soon(self._fire)
            else:
                self._handle = loop.call_later(self._interval, self._fire)

    def _fire(self) -> None:
        with self._lock:
            if self.cancelled:
                return
            self._handle = None
            if self._remaining is not None:
                self._remaining -= 1
            self.runs += 1
            again = self._remaining != 0
        if again:
            self.schedule(self._reactor.loop)
        else:
            self._reactor.forget_timer(self)
        self._reactor.call_user(self._fn, "timer")

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else f"runs={self.runs}"
        return f"<Timer {self._fn!r} every {self._interval:g}s {state}>"
