"""Lifecycle hooks: ``iodine.on_state(event, fn)``.

Start-type events run their hooks in registration order and shutdown-type events
in reverse, so that a hook registered later (which may depend on an earlier one)
is torn down first, as with nested context managers.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("iodine.core")

START_EVENTS = (
    "pre_start",
    "before_fork",
    "after_fork",
    "enter_child",
    "enter_master",
    "on_start",
    "on_parent_crash",
    "on_child_crash",
)
SHUTDOWN_EVENTS = ("start_shutdown", "on_finish")
EVENTS = START_EVENTS + SHUTDOWN_EVENTS

Hook = Callable[[], Any]


class Hooks:
    """The hooks registered for each lifecycle event."""

    def __init__(self) -> None:
        self._hooks: dict[str, list[Hook]] = {event: [] for event in EVENTS}

    def add(self, event: str, fn: Hook) -> None:
        if event not in self._hooks:
            known = ", ".join(EVENTS)
            raise ValueError(
                f"unknown lifecycle event {event!r}; expected one of {known}"
            )
        if not callable(fn):
            raise TypeError(f"on_state needs a callable, not {fn!r}")
        self._hooks[event].append(fn)

    def remove(self, event: str, fn: Hook) -> None:
        hooks = self._hooks.get(event, [])
        if fn in hooks:
            hooks.remove(fn)

    async def fire(self, event: str) -> None:
        """Run the hooks of ``event``; a hook that fails is logged and skipped."""
        hooks = self._hooks[event]
        ordered = reversed(hooks) if event in SHUTDOWN_EVENTS else iter(hooks)
        for fn in list(ordered):
            try:
                result = fn()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("The %s hook %r failed; continuing.", event, fn)
