"""Connections: a transport, the handler that drives it, and its callbacks in order.

A :class:`Connection` is the asyncio protocol of one socket and, at the same time,
the object handed to every callback as ``conn``. Events (open, message, drained,
shutdown, timeout, close) go through a per-connection queue so that a
connection's callbacks never run concurrently, whichever of the three places a
callback runs in: inline on the loop, as a task on the loop (coroutines), or on
the thread pool. All socket I/O stays on the loop thread.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import threading
from collections import deque
from collections.abc import Callable
from threading import get_ident
from typing import TYPE_CHECKING, Any

from iodine.core.handlers import (
    CLOSE,
    DRAINED,
    MESSAGE,
    OPEN,
    SHUTDOWN,
    TIMEOUT,
    Callbacks,
    check_handler,
    make_handler,
)

if TYPE_CHECKING:
    from iodine.core.reactor import Reactor

logger = logging.getLogger("iodine.core")


class CloseReason(enum.StrEnum):
    """Why ``on_close`` was called. ``conn.error`` holds the exception, if any."""

    PEER = "peer closed"
    TIMEOUT = "timeout"
    SHUTDOWN = "shutdown"
    ERROR = "error"
    LOCAL = "local close"
    SLOW_CONSUMER = "slow consumer"
    CONNECT_FAILED = "connect failed"
    HANDLER_SWITCHED = "handler switched"


class MissingPackageError(RuntimeError):
    """A feature was used whose package is not installed."""


# Connection states.
NEW, OPEN_STATE, CLOSING, CLOSED = range(4)

# Internal events, numbered after the handler events: _CALL runs ``arg()`` on the
# loop in queue order; _SWITCHED calls the previous handler's on_close.
_CALL, _SWITCHED = 6, 7

# How often the reactor's clock (``reactor.now``) advances and idle timeouts are
# checked. Stamping activity with that clock instead of reading the time costs
# nothing per message; timeouts are whole seconds in practice.
TICK_SECONDS = 1.0

# Events a peer can pile up while a slow callback runs; past this, reading pauses
# until the callbacks catch up, so a flood cannot grow the queue without bound.
MAX_QUEUED_EVENTS = 64

_EVENT_NAMES = ("on_open", "on_message", "on_drained", "on_shutdown", "on_timeout")

# Stands in for a handler before one exists and after the connection is released.
_NO_HANDLER = Callbacks(object())

# Guards the few counters that writes from other threads touch. One lock for
# every connection rather than one each: it is held for an addition, and 88
# bytes per connection add up over 10,000 idle WebSockets.
_FOREIGN_LOCK = threading.Lock()


class Connection(asyncio.BufferedProtocol):
    """One TCP or Unix connection, driven by a handler's ``on_*`` callbacks.

    Attributes:
        peer: The remote address (``(host, port)`` for TCP, a path or ``""`` for
            Unix sockets).
        error: The exception that closed the connection, if one did.
        protocol: ``"raw"`` for plain TCP and Unix connections.
    """

    protocol = "raw"

    __slots__ = (
        "__weakref__",
        "_busy",
        "_callbacks",
        "_early",
        "_factory",
        "_foreign",
        "_held",
        "_inline",
        "_last_seen",
        "_loop",
        "_on_lost",
        "_paused_by",
        "_queue",
        "_reactor",
        "_reason",
        "_state",
        "_tid",
        "_timeout",
        "_transport",
        "_write_paused",
        "error",
        "peer",
    )

    def __init__(
        self,
        reactor: Reactor,
        handler: object,
        *,
        timeout: float = 0,
        client: bool = False,
    ) -> None:
        self._reactor = reactor
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.Transport | None = None
        check_handler(handler)  # refuses a bad handler here, in the caller
        # Kept as given (handler, class or factory) and made into this
        # connection's handler when it connects; wrapping it in a closure
        # instead would cost 200 bytes on every idle WebSocket.
        self._factory = handler
        self._callbacks = _NO_HANDLER
        self._inline = reactor.settings.callbacks == "inline"
        self._busy = False
        self._queue: deque[tuple[int, Any]] | None = None
        self._state = NEW
        self._reason: CloseReason | None = None
        self._timeout = 0.0
        self._last_seen = 0.0
        self._write_paused = False
        # Why reading is paused: bit 1 for write backpressure, bit 2 for a backlog
        # of queued events. Reading resumes when both are clear.
        self._paused_by = 0
        self._held: list[Any] | None = None
        # Bytes written from other threads that the loop has not sent yet.
        self._foreign = 0
        # The loop thread's id, known once connected; writes from any other
        # thread are handed to the loop.
        self._tid: int | None = None
        # Writes made on a client connection before it is connected.
        self._early: list[bytes] | None = [] if client else None
        self.error: BaseException | None = None
        self.peer: Any = None
        # Called once when the socket is gone: a service that handed its
        # transport to this connection (an HTTP upgrade) counts it until then.
        self._on_lost: Callable[[], object] | None = None
        if client:
            # A client's handler exists from the start, so ``conn.handler`` can be
            # used before the connection is up.
            self._callbacks = Callbacks(make_handler(self._factory))
        if timeout:
            self.timeout = timeout

    # ----------------------------------------------------------------- public API

    @property
    def is_open(self) -> bool:
        """True until the connection starts closing."""
        return self._state == OPEN_STATE

    @property
    def pending(self) -> int:
        """Bytes written but not yet handed to the kernel."""
        waiting = self._foreign + sum(map(len, self._early or ()))
        transport = self._transport
        if transport is not None and not transport.is_closing():
            waiting += transport.get_write_buffer_size()
        return waiting

    @property
    def timeout(self) -> float:
        """Idle seconds before ``on_timeout`` (or a close, without one); 0 = none."""
        return self._timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("timeout cannot be negative")
        self._timeout = float(seconds)
        self._last_seen = self._reactor.now
        self._reactor.watch_timeout(self, bool(seconds))

    @property
    def handler(self) -> object:
        """The current handler. Setting it calls the old handler's ``on_close``
        (reason ``HANDLER_SWITCHED``) and then the new one's ``on_open``, before
        any further message is delivered."""
        handler = self._callbacks.handler
        return None if self._callbacks is _NO_HANDLER else handler

    @handler.setter
    def handler(self, handler: object) -> None:
        new = Callbacks(make_handler(handler))
        if not self._reactor.on_loop_thread():
            self._reactor.call_soon_threadsafe(self._switch, new)
        else:
            self._switch(new)

    def write(self, data: bytes | bytearray | memoryview | str) -> bool:
        """Queue ``data`` for sending; never blocks. Safe from any thread.

        A ``str`` is sent as UTF-8. Returns whether the connection is still open
        (data written to a closing connection is dropped).
        """
        if isinstance(data, str):
            data = data.encode()
        if self._state != OPEN_STATE or get_ident() != self._tid:
            return self._write_elsewhere(data)
        # The hot path of every echo and broadcast, kept to the bare minimum:
        # measured per message, each extra call here costs about 2 % of a
        # small-message echo's throughput.
        self._transport.write(data)  # type: ignore[union-attr]  # open: connected
        self._last_seen = self._reactor.now
        if self._write_paused:
            self._check_slow_consumer()
            return self._state == OPEN_STATE
        return True

    def _write_elsewhere(self, data: bytes | bytearray | memoryview) -> bool:
        """Write from another thread, or before the connection is open."""
        if self._state == OPEN_STATE:
            self._count_foreign(len(data))
            self._reactor.call_soon_threadsafe(self._write_from_thread, bytes(data))
            return True
        return self._write_early(data)

    def _count_foreign(self, size: int) -> None:
        """Count bytes another thread handed to the loop (negative once sent)."""
        with _FOREIGN_LOCK:
            self._foreign += size

    def _write_early(self, data: bytes | bytearray | memoryview) -> bool:
        with _FOREIGN_LOCK:
            if self._state == NEW and self._early is not None:
                self._early.append(bytes(data))
                return True
        return False

    def close(self) -> None:
        """Close once everything written so far has been sent. Any thread."""
        if get_ident() != self._tid or self._foreign:
            # Behind any writes other threads queued before this call.
            self._reactor.call_soon_threadsafe(self._close, CloseReason.LOCAL)
        else:
            self._close(CloseReason.LOCAL)

    def force_close(self) -> None:
        """Close now, dropping unsent data. Any thread."""
        if not self._reactor.on_loop_thread():
            self._reactor.call_soon_threadsafe(self._abort, CloseReason.LOCAL)
        else:
            self._abort(CloseReason.LOCAL)

    def subscribe(self, *args: Any, **kwargs: Any) -> Any:
        """Subscribe this connection to a channel (needs iodine-pubsub)."""
        return _pubsub("subscribe")(self, *args, **kwargs)

    def unsubscribe(self, *args: Any, **kwargs: Any) -> Any:
        """Cancel a subscription of this connection (needs iodine-pubsub)."""
        return _pubsub("unsubscribe")(self, *args, **kwargs)

    def publish(self, *args: Any, **kwargs: Any) -> Any:
        """Publish a message to a channel (needs iodine-pubsub)."""
        return _pubsub("publish")(self, *args, **kwargs)

    def __repr__(self) -> str:
        state = ("new", "open", "closing", "closed")[self._state]
        return f"<{type(self).__name__} {self.protocol} {self.peer!r} {state}>"

    # ------------------------------------------------------ asyncio protocol API

    def connection_made(self, transport: Any) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = transport
        self._loop = self._reactor.loop
        self._tid = get_ident()
        if self.peer is None:  # an upgrade hands over the one it has
            self.peer = transport.get_extra_info("peername")
        transport.set_write_buffer_limits(
            high=self._reactor.settings.write_high_water, low=0
        )
        closing_early = self._state == CLOSING
        self._state = OPEN_STATE
        self._last_seen = self._reactor.now
        self._reactor.add_connection(self)
        if self._callbacks is _NO_HANDLER:
            try:
                self._callbacks = Callbacks(make_handler(self._factory))
            except Exception:
                logger.exception(
                    "Could not create a handler for %s; dropping the connection.",
                    self.peer,
                )
                self._callbacks = _NO_HANDLER
                self._abort(CloseReason.ERROR)
                return
        self._post(OPEN, None)
        with _FOREIGN_LOCK:
            early, self._early = self._early, None
        for data in early or ():
            self._send(data)
        if closing_early:
            self._close(CloseReason.LOCAL)

    def get_buffer(self, sizehint: int) -> memoryview:
        # One loop-wide buffer serves every connection: the loop reads into it
        # and calls buffer_updated right away, and the data is copied out there.
        return self._reactor.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        reactor = self._reactor
        self._last_seen = reactor.now
        data = reactor.read_buffer[:nbytes].tobytes()
        if self._busy or self._paused_by or not self._inline:
            self._deliver(data)
            return
        # The raw read path's common case, _deliver's last branch inlined: every
        # call saved here is worth a few per cent of a small-message echo.
        fn, is_async = self._callbacks.table[MESSAGE]
        if fn is None or is_async:
            self._deliver(data)
            return
        self._busy = True
        try:
            result = fn(self, data)
        except Exception as exc:
            self._failed(exc, MESSAGE)
        else:
            if (
                result is not None
                and inspect.iscoroutine(result)
                and not self._start_coroutine(result, MESSAGE)
            ):
                return
        if self._queue:
            self._resume()
        else:
            self._busy = False

    def _deliver(self, message: Any) -> None:
        """Hand one message to ``on_message``, in order with the other events.

        Protocols built on this class (WebSocket, SSE) call it with each
        decoded message; raw connections with each read.
        """
        if self._paused_by:
            # uvloop starts reading after connection_made returns even when it
            # paused reading (as on_open writing a lot does), so one read can
            # arrive while paused: keep it until reading resumes.
            self._hold(message)
            return
        if self._busy:
            self._enqueue(MESSAGE, message)
            return
        fn, is_async = self._callbacks.table[MESSAGE]
        if fn is None:
            return
        self._busy = True
        if is_async or not self._inline:
            self._run(MESSAGE, message)
            return
        # The common case, inlined: a plain on_message run on the loop.
        try:
            result = fn(self, message)
        except Exception as exc:
            self._failed(exc, MESSAGE)
        else:
            if (
                result is not None
                and inspect.iscoroutine(result)
                and not self._start_coroutine(result, MESSAGE)
            ):
                return
        if self._queue:
            self._resume()
        else:
            self._busy = False

    def eof_received(self) -> bool:
        # Returning False lets the transport close; connection_lost follows.
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._state == CLOSED:
            return
        self._state = CLOSED
        if exc is not None and self.error is None:
            self.error = exc
        reason = self._reason or (
            CloseReason.PEER if exc is None else CloseReason.ERROR
        )
        self._reactor.discard_connection(self)
        if self._on_lost is not None:
            self._on_lost()
        held, self._held = self._held, None
        for data in held or ():  # read while paused: still delivered, in order
            self._post(MESSAGE, data)
        self._post(CLOSE, reason)
        self._post(_CALL, self._release)

    def pause_writing(self) -> None:
        self._write_paused = True
        self._pause_reading(1)

    def resume_writing(self) -> None:
        # The low-water mark is 0, so this means the buffer is empty.
        self._write_paused = False
        if self._state == OPEN_STATE:
            self._post(DRAINED, None)
        self._resume_reading(1)

    # ------------------------------------------------------- used by the reactor

    def connect_failed(self, exc: BaseException) -> None:
        """Report a client connection that never opened through ``on_close``."""
        self.error = exc
        self._state = CLOSED
        self._early = None
        self._post(CLOSE, CloseReason.CONNECT_FAILED)
        self._post(_CALL, self._release)

    def idle_for(self, now: float) -> bool:
        """Whether the idle timeout has passed; if so, restart the idle clock."""
        if self._state != OPEN_STATE or not self._timeout:
            return False
        # Activity is stamped with the reactor's clock, which ticks once per
        # TICK_SECONDS and so may lag the real time of the activity by up to a
        # tick: waiting one tick more never times out early.
        if now - self._last_seen < self._timeout + TICK_SECONDS:
            return False
        self._last_seen = now
        self._post(TIMEOUT, None)
        return True

    def shutdown(self) -> None:
        """Call ``on_shutdown``, then close once everything written is sent."""
        if self._state == OPEN_STATE:
            self._post(SHUTDOWN, None)
            self._post(_CALL, lambda: self._close(CloseReason.SHUTDOWN))

    def abort(self, reason: CloseReason) -> None:
        self._abort(reason)

    # ----------------------------------------------------------------- writing

    def _send(self, data: bytes | bytearray | memoryview) -> None:
        transport = self._transport
        assert transport is not None
        transport.write(data)
        self._last_seen = self._reactor.now
        if self._write_paused:
            self._check_slow_consumer()

    def _write_from_thread(self, data: bytes) -> None:
        self._count_foreign(-len(data))
        if self._state == OPEN_STATE:
            self._send(data)

    def _check_slow_consumer(self) -> None:
        transport = self._transport
        assert transport is not None
        unsent = transport.get_write_buffer_size()
        if unsent > self._reactor.settings.max_pending:
            logger.warning(
                "Closing slow consumer %s: %d bytes unsent, over the %d byte cap.",
                self.peer,
                unsent,
                self._reactor.settings.max_pending,
            )
            self._abort(CloseReason.SLOW_CONSUMER)

    def _close(self, reason: CloseReason) -> None:
        if self._state == NEW:
            self._reason = reason
            self._state = CLOSING
        elif self._state == OPEN_STATE:
            self._reason = reason
            self._state = CLOSING
            assert self._transport is not None
            self._transport.close()

    def _abort(self, reason: CloseReason) -> None:
        if self._state in (OPEN_STATE, CLOSING) and self._transport is not None:
            if self._state == OPEN_STATE:
                # A close already under way keeps the reason it started with.
                self._reason = reason
            self._state = CLOSING
            self._transport.abort()

    def _pause_reading(self, why: int) -> None:
        if not self._paused_by and self._state == OPEN_STATE:
            assert self._transport is not None
            self._transport.pause_reading()
        self._paused_by |= why

    def _resume_reading(self, why: int) -> None:
        if not self._paused_by & why:
            return
        self._paused_by &= ~why
        if not self._paused_by and self._state == OPEN_STATE:
            held, self._held = self._held, None
            for data in held or ():
                self._post(MESSAGE, data)
            assert self._transport is not None
            self._transport.resume_reading()

    def _hold(self, data: Any) -> None:
        assert self._transport is not None
        self._transport.pause_reading()
        if self._held is None:
            self._held = []
        self._held.append(data)

    # ------------------------------------------------------- the event queue

    def _enqueue(self, event: int, arg: Any) -> None:
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        queue.append((event, arg))
        if len(queue) >= MAX_QUEUED_EVENTS and event == MESSAGE:
            self._pause_reading(2)

    def _post(self, event: int, arg: Any) -> None:
        """Run the event now if the connection is idle, else queue it."""
        if self._busy:
            self._enqueue(event, arg)
        else:
            self._busy = True
            self._run(event, arg)

    def _run(self, event: int, arg: Any) -> None:
        """Run events in order until the queue is empty or one continues elsewhere
        (a task or a pool thread, which calls ``_resume`` when it is done)."""
        while True:
            if not self._begin(event, arg):
                return
            queue = self._queue
            if not queue:
                self._busy = False
                if self._paused_by & 2:
                    self._resume_reading(2)
                return
            event, arg = queue.popleft()

    def _resume(self) -> None:
        queue = self._queue
        if queue:
            event, arg = queue.popleft()
            self._run(event, arg)
        else:
            self._busy = False
            if self._paused_by & 2:
                self._resume_reading(2)

    def _begin(self, event: int, arg: Any) -> bool:
        """Start one event's callback; True if it has already finished."""
        if event == _CALL:
            arg()
            return True
        if event == _SWITCHED:
            fn, is_async = arg.table[CLOSE]
            args: tuple[Any, ...] = (self, CloseReason.HANDLER_SWITCHED)
            event = CLOSE
        else:
            fn, is_async = self._callbacks.table[event]
            args = (self,) if arg is None else (self, arg)
        if fn is None:
            if event == TIMEOUT:
                self._close(CloseReason.TIMEOUT)
            return True
        if is_async:
            try:
                coro = fn(*args)
            except Exception as exc:
                self._failed(exc, event)
                return True
            return self._start_coroutine(coro, event)
        if self._inline:
            try:
                result = fn(*args)
            except Exception as exc:
                self._failed(exc, event)
                return True
            if result is not None and inspect.iscoroutine(result):
                return self._start_coroutine(result, event)
            return True
        self._reactor.pool.queue(self._call_in_thread, fn, args, event)
        return False

    def _start_coroutine(self, coro: Any, event: int) -> bool:
        task = self._reactor.start_task(coro)
        if task.done():
            self._task_finished(task, event)
            return True
        task.add_done_callback(lambda task: self._task_done(task, event))
        return False

    def _task_done(self, task: asyncio.Task[Any], event: int) -> None:
        self._task_finished(task, event)
        self._resume()

    def _task_finished(self, task: asyncio.Task[Any], event: int) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._failed(exc, event)

    def _call_in_thread(
        self, fn: Callable[..., Any], args: tuple[Any, ...], event: int
    ) -> None:
        # Runs on a pool thread; everything after the call goes back to the loop.
        try:
            result, error = fn(*args), None
        except Exception as exc:
            result, error = None, exc
        self._reactor.call_soon_threadsafe(self._thread_done, result, error, event)

    def _thread_done(self, result: Any, error: Exception | None, event: int) -> None:
        if error is not None:
            self._failed(error, event)
        elif (
            result is not None
            and inspect.iscoroutine(result)
            and not self._start_coroutine(result, event)
        ):
            return
        self._resume()

    def _failed(self, exc: BaseException, event: int) -> None:
        """Log a callback's exception; close the connection unless it was closing."""
        if event == CLOSE:
            logger.error(
                "on_close of %r raised for %s.",
                self._callbacks.handler,
                self.peer,
                exc_info=exc,
            )
            return
        if self.error is None:
            self.error = exc
        done = self._close_failed()
        logger.error(
            "%s of %r raised for %s; %s.",
            _EVENT_NAMES[event],
            self._callbacks.handler,
            self.peer,
            done,
            exc_info=exc,
        )

    def _close_failed(self) -> str:
        """End the connection after a callback raised; say how, for the log."""
        self._abort(CloseReason.ERROR)
        return "closing the connection"

    def _switch(self, new: Callbacks) -> None:
        old, self._callbacks = self._callbacks, new
        if self._state not in (OPEN_STATE, CLOSING):
            return
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        # Ahead of anything queued: no message may reach the new handler before
        # its on_open, nor the old one after its on_close.
        queue.appendleft((OPEN, None))
        queue.appendleft((_SWITCHED, old))
        if not self._busy:
            self._busy = True
            self._resume()

    def _release(self) -> None:
        # Drop the references a closed connection no longer needs, so that a
        # handler kept alive elsewhere does not keep the transport too.
        self._transport = None
        self._queue = None
        self._callbacks = _NO_HANDLER


def _pubsub(name: str) -> Callable[..., Any]:
    fn = _PUBSUB.get(name)
    if fn is None:
        raise MissingPackageError(
            f"conn.{name} needs the iodine-pubsub package: pip install iodine-pubsub"
        )
    return fn


# Filled in by iodine-pubsub when it is installed and imported.
_PUBSUB: dict[str, Callable[..., Any]] = {}


def install_pubsub(**methods: Callable[..., Any]) -> None:
    """Let a pub/sub package provide ``subscribe``, ``unsubscribe`` and ``publish``."""
    _PUBSUB.update(methods)
