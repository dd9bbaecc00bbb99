"""Handlers: the objects whose ``on_*`` callbacks drive a connection.

A handler is any object with some of the callbacks below, a class (instantiated
once per connection) or a factory function (called once per connection). Each
callback is optional and may be a plain function or a coroutine function.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

CALLBACK_NAMES = (
    "on_open",
    "on_message",
    "on_drained",
    "on_shutdown",
    "on_close",
    "on_timeout",
    "ping",
)


def check_handler(handler: object) -> None:
    """Refuse what cannot be a handler, before any connection needs one.

    Raises:
        TypeError: ``handler`` is neither a handler, a class nor a factory.
    """
    if not (isinstance(handler, type) or has_callbacks(handler) or callable(handler)):
        raise _not_a_handler(handler)


def make_handler(handler: object) -> object:
    """The handler of a new connection: ``handler`` itself if it has callbacks,
    else what calling it (a class or a factory) returns.

    Raises:
        TypeError: ``handler`` is neither a handler, a class nor a factory.
    """
    if isinstance(handler, type):
        return handler()
    if has_callbacks(handler):
        return handler
    if callable(handler):
        return handler()
    raise _not_a_handler(handler)


def has_callbacks(handler: object) -> bool:
    """Whether ``handler`` has at least one of the ``on_*`` callbacks."""
    return any(hasattr(handler, name) for name in CALLBACK_NAMES)


def _not_a_handler(handler: object) -> TypeError:
    return TypeError(
        "a handler must be an object with on_* callbacks, a class or a factory; "
        f"got {handler!r}"
    )


# Event numbers index a Callbacks table; the connection posts these.
OPEN, MESSAGE, DRAINED, SHUTDOWN, TIMEOUT, CLOSE = range(6)
_EVENT_CALLBACKS = (
    "on_open",
    "on_message",
    "on_drained",
    "on_shutdown",
    "on_timeout",
    "on_close",
)


_ABSENT: tuple[None, bool] = (None, False)


class Callbacks:
    """A handler's callbacks looked up once, each with whether it is a coroutine.

    Looking them up per event would cost a getattr and an inspect call per
    message; a connection keeps one of these per handler instead, indexed by the
    event numbers above.
    """

    __slots__ = ("handler", "table")

    def __init__(self, handler: object) -> None:
        self.handler = handler
        table: list[tuple[Callable[..., Any] | None, bool]] = []
        for name in _EVENT_CALLBACKS:
            fn = _callback(handler, name)
            if fn is None and name == "on_timeout":
                # Ruby iodine calls this one ``ping``; both names work.
                fn = _callback(handler, "ping")
            if fn is None:
                table.append(_ABSENT)  # shared: most handlers lack most events
            else:
                table.append((fn, is_coroutine_function(fn)))
        self.table = tuple(table)


def _callback(handler: object, name: str) -> Callable[..., Any] | None:
    fn = getattr(handler, name, None)
    if fn is None:
        return None
    if not callable(fn):
        raise TypeError(f"{type(handler).__name__}.{name} is not callable")
    return fn  # type: ignore[no-any-return]  # getattr on an arbitrary object


def is_coroutine_function(fn: object) -> bool:
    """Like ``inspect.iscoroutinefunction``, also seeing through ``partial``."""
    while hasattr(fn, "func"):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004  # an object with async __call__
    )
