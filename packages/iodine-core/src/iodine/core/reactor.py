"""The reactor: one event loop per process and everything that runs on it.

``iodine.listen``, ``iodine.connect`` and the timer functions may be called before
``iodine.run`` (they are set up when the loop starts) or while it runs, from any
thread. ``run`` blocks until ``stop``; the same reactor can then run again.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from iodine.core import addresses, services
from iodine.core.connection import TICK_SECONDS, CloseReason, Connection
from iodine.core.handlers import is_coroutine_function
from iodine.core.hooks import Hooks
from iodine.core.listeners import Listener
from iodine.core.memory import MMAP_THRESHOLD, TRIM_THRESHOLD, tune_malloc
from iodine.core.settings import KIB, MIB, Settings
from iodine.core.threads import ThreadPool
from iodine.core.timers import Timer
from iodine.core.version import VERSION

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop exists wherever the tests run
    uvloop = None  # type: ignore[assignment]  # asyncio's own loop stands in

logger = logging.getLogger("iodine.core")

# One read buffer serves the whole loop (see Connection.get_buffer). 256 KiB is
# what uvloop itself reads into, so bulk transfers take as few recv calls as
# with plain protocols.
READ_BUFFER_SIZE = 256 * KIB


_EAGER_TASKS = sys.version_info >= (3, 12)


class Managed(Protocol):
    """What the reactor needs of a connection to time it out and shut it down.

    :class:`Connection` is one; a service's own protocol (HTTP) can be another.
    """

    def shutdown(self) -> None:
        """Start a graceful close: tell the application, flush, then close."""

    def abort(self, reason: CloseReason) -> None:
        """Close now, dropping unsent data."""

    def idle_for(self, now: float) -> bool:
        """Called once a second while watched: act on a passed deadline."""


class Reactor:
    """Owns the loop, listeners, connections, timers, hooks and thread pool."""

    def __init__(self) -> None:
        self.settings = Settings()
        self.hooks = Hooks()
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set by run
        self.pool = ThreadPool(self.settings.threads)
        self.read_buffer = memoryview(bytearray(READ_BUFFER_SIZE))
        self.now = 0.0
        self._loop_thread: int | None = None
        self._listeners: list[Listener] = []
        self._clients: list[tuple[Any, addresses.Endpoint]] = []
        self._timers: set[Timer] = set()
        self._connections: set[Managed] = set()
        self._timed: set[Managed] = set()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._stop: asyncio.Event | None = None
        self._stop_requested = False
        self._all_closed: asyncio.Event | None = None
        self._lock = threading.Lock()

    # --------------------------------------------------------------- state

    @property
    def is_running(self) -> bool:
        return self._loop_thread is not None

    def on_loop_thread(self) -> bool:
        return threading.get_ident() == self._loop_thread

    def call_soon_threadsafe(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` on the loop; dropped quietly once the loop is gone."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # closed between the check and the call
            pass

    def time(self) -> float:
        return self.loop.time() if self.loop is not None else 0.0

    # --------------------------------------------------------------- public API

    def listen(
        self,
        *,
        url: str | None = None,
        port: int | str | None = None,
        address: str | None = None,
        handler: object = None,
        service: str | None = None,
        tls: object = None,
        **options: Any,
    ) -> Listener:
        if tls is not None:
            raise NotImplementedError("TLS listeners are not available yet")
        endpoint = addresses.resolve(url, address, port, service)
        name = endpoint.service or "raw"
        factory = services.find_service(name)(self, handler, dict(options))
        listener = Listener(self, endpoint, factory, name)
        with self._lock:
            self._listeners.append(listener)
        if self.is_running:
            self._call_on_loop(lambda: self._spawn(listener.start(self.loop)))
        return listener

    def connect(
        self,
        url: str | None = None,
        *,
        address: str | None = None,
        port: int | str | None = None,
        handler: object,
        timeout: float = 0,
        **options: Any,
    ) -> Any:
        scheme = url.partition("://")[0].lower() if url and "://" in url else ""
        if url and scheme not in ("", "tcp", "unix", "raw"):
            # ws://, wss:// and the like belong to the package that speaks them.
            client = services.find_client(scheme)
            return client(self, url, handler, dict(options, timeout=timeout))
        if options:
            raise TypeError(
                f"unexpected option(s) for a raw connection: {', '.join(options)}"
            )
        endpoint = addresses.resolve(url, address, port)
        conn = Connection(self, handler, timeout=timeout, client=True)
        self.open_client(conn, endpoint)
        return conn

    def open_client(self, conn: Any, endpoint: addresses.Endpoint) -> None:
        """Connect ``conn`` (an asyncio protocol with ``connect_failed(exc)``) to
        ``endpoint`` now, or when the reactor starts."""
        if self.is_running:
            self._call_on_loop(lambda: self._spawn(self._open_client(conn, endpoint)))
        else:
            with self._lock:
                self._clients.append((conn, endpoint))

    def run_after(self, ms: float, fn: Callable[[], Any]) -> Timer:
        return self._add_timer(Timer(self, fn, ms / 1000, 1))

    def run_every(
        self, ms: float, fn: Callable[[], Any], repetitions: int | None = None
    ) -> Timer:
        if ms <= 0:
            raise ValueError("run_every needs an interval above 0 ms")
        if repetitions is not None and repetitions < 1:
            raise ValueError("repetitions must be at least 1 (or None for ever)")
        return self._add_timer(Timer(self, fn, ms / 1000, repetitions))

    def defer(self, fn: Callable[[], Any]) -> Timer:
        return self._add_timer(Timer(self, fn, 0, 1))

    def run(self, threads: int | None = None, workers: int | None = None) -> None:
        if self.is_running:
            raise RuntimeError("iodine is already running")
        if threads is not None:
            self.settings.threads = threads
        if workers is not None:
            self.settings.workers = workers
        self.settings.validate()
        _ensure_logging()
        loop_factory = uvloop.new_event_loop if uvloop else asyncio.new_event_loop
        try:
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                runner.run(self._main())
        finally:
            self._reset()

    def stop(self) -> None:
        """Ask the reactor to stop gracefully. Any thread; before run, a no-op."""
        self._stop_requested = True
        stop = self._stop
        if stop is not None:
            self.call_soon_threadsafe(stop.set)

    # --------------------------------------------------------- user callbacks

    def start_task(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as a task; on 3.12+ its first step runs right now.

        An eager start saves a loop iteration for callbacks that finish without
        waiting, and keeps ``asyncio.current_task()`` and contextvars correct.
        """
        if _EAGER_TASKS:
            return asyncio.Task(coro, loop=self.loop, eager_start=True)  # type: ignore[call-arg]  # eager_start is 3.12+
        return self.loop.create_task(coro)

    def call_user(self, fn: Callable[[], Any], what: str) -> None:
        """Run a timer's or hook's callback where the settings say, logging errors."""
        if is_coroutine_function(fn):
            self._watch(self.start_task(fn()), what)
        elif self.settings.callbacks == "inline":
            self._call_logged(fn, what)
        else:
            self.pool.submit(self._call_logged, fn, what)

    def _call_logged(self, fn: Callable[[], Any], what: str) -> None:
        try:
            result = fn()
        except Exception:
            logger.exception("The %s callback %r raised.", what, fn)
            return
        if asyncio.iscoroutine(result):
            if self.on_loop_thread():
                self._watch(self.start_task(result), what)
            else:
                self.call_soon_threadsafe(
                    lambda: self._watch(self.start_task(result), what)
                )

    def _watch(self, task: asyncio.Task[Any], what: str) -> None:
        def done(task: asyncio.Task[Any]) -> None:
            self._tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                logger.error("The %s callback raised.", what, exc_info=task.exception())

        if task.done():
            done(task)
        else:
            self._tasks.add(task)
            task.add_done_callback(done)

    # ------------------------------------------------ bookkeeping for others

    def add_connection(self, conn: Managed) -> None:
        self._connections.add(conn)

    def discard_connection(self, conn: Managed) -> None:
        self._connections.discard(conn)
        self._timed.discard(conn)
        if not self._connections and self._all_closed is not None:
            self._all_closed.set()

    def watch_timeout(self, conn: Managed, watch: bool) -> None:
        if watch:
            self._timed.add(conn)
        else:
            self._timed.discard(conn)

    def forget_timer(self, timer: Timer) -> None:
        with self._lock:
            self._timers.discard(timer)

    def forget_listener(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    @property
    def connections(self) -> frozenset[Managed]:
        return frozenset(self._connections)

    @property
    def listeners(self) -> list[Listener]:
        return list(self._listeners)

    # ------------------------------------------------------------ internals

    def _call_on_loop(self, fn: Callable[[], object]) -> None:
        if self.on_loop_thread():
            fn()
        else:
            self.call_soon_threadsafe(fn)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._watch(self.loop.create_task(coro), "internal")

    def _add_timer(self, timer: Timer) -> Timer:
        with self._lock:
            self._timers.add(timer)
        if self.is_running:
            self._call_on_loop(lambda: timer.schedule(self.loop))
        return timer

    async def _open_client(
        self, conn: Connection, endpoint: addresses.Endpoint
    ) -> None:
        try:
            if endpoint.kind == "unix":
                await self.loop.create_unix_connection(lambda: conn, endpoint.path)
            else:
                await self.loop.create_connection(
                    lambda: conn, endpoint.host, endpoint.port
                )
        except OSError as exc:
            logger.debug("Connecting to %s failed: %s", endpoint.url, exc)
            conn.connect_failed(exc)

    async def _main(self) -> None:
        loop = self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._loop_thread = threading.get_ident()
        self.now = loop.time()
        self._install_signal_handlers()
        try:
            await self._start()
            if not self._stop_requested:
                await self._stop.wait()
            await self._shutdown()
        finally:
            self._remove_signal_handlers()

    async def _start(self) -> None:
        # Startup: hooks, the pool, then the sockets, timers and clients
        # registered before run().
        await self.hooks.fire("pre_start")
        if self.settings.tune_malloc and tune_malloc():
            logger.debug(
                "malloc keeps blocks under %d KiB on the heap and up to %d MiB "
                "of free memory.",
                MMAP_THRESHOLD // KIB,
                TRIM_THRESHOLD // MIB,
            )
        self.pool = ThreadPool(self.settings.threads)
        self.pool.start()
        for listener in list(self._listeners):
            await listener.start(self.loop)
        with self._lock:
            clients, self._clients = self._clients, []
            timers = list(self._timers)
        for conn, endpoint in clients:
            self._spawn(self._open_client(conn, endpoint))
        for timer in timers:
            timer.schedule(self.loop)
        self.loop.call_later(TICK_SECONDS, self._tick)

        logger.info(
            "iodine %s running: %s; %d thread%s, %d worker, callbacks %s.",
            VERSION,
            ", ".join(f"{lst.url} ({lst.service})" for lst in self._listeners)
            or "no listeners",
            self.settings.threads,
            "" if self.settings.threads == 1 else "s",
            self.settings.workers,
            self.settings.callbacks,
        )
        await self.hooks.fire("on_start")

    def _tick(self) -> None:
        if self._stop is None:
            return
        self.now = now = self.loop.time()
        for conn in list(self._timed):
            conn.idle_for(now)
        self.loop.call_later(TICK_SECONDS, self._tick)

    async def _shutdown(self) -> None:
        timeout = self.settings.shutdown_timeout
        logger.info(
            "Shutting down: %d connection%s open.",
            len(self._connections),
            "" if len(self._connections) == 1 else "s",
        )
        await self.hooks.fire("start_shutdown")

        # Stop accepting, then let every connection run on_shutdown and flush.
        for listener in list(self._listeners):
            listener.close()
        self._all_closed = asyncio.Event()
        for conn in list(self._connections):
            conn.shutdown()
        if self._connections:
            try:
                await asyncio.wait_for(self._all_closed.wait(), timeout)
            except TimeoutError:
                logger.warning(
                    "%d connection(s) still open after %.1f s; closing them.",
                    len(self._connections),
                    timeout,
                )
                for conn in list(self._connections):
                    conn.abort(CloseReason.SHUTDOWN)

        # Timers stop; tasks still running get a moment, then are cancelled.
        with self._lock:
            timers = list(self._timers)
        for timer in timers:
            timer.cancel()
        await asyncio.sleep(0)
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
        await asyncio.to_thread(self.pool.shutdown, timeout)
        await self.hooks.fire("on_finish")
        logger.info("iodine stopped.")

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.loop.add_signal_handler(sig, self.stop)
            except (NotImplementedError, RuntimeError):  # pragma: no cover
                pass

    def _remove_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover
                pass

    def _reset(self) -> None:
        self._loop_thread = None
        self._stop = None
        self._stop_requested = False
        self._all_closed = None
        self._connections.clear()
        self._timed.clear()
        self._tasks.clear()
        with self._lock:
            self._timers.clear()
            self._clients.clear()
            for listener in list(self._listeners):
                listener.close()
            self._listeners.clear()
        self.loop = None  # type: ignore[assignment]  # no loop between runs


def _ensure_logging() -> None:
    """Show iodine's log lines when the application configured no logging."""
    root = logging.getLogger()
    ours = logging.getLogger("iodine")
    if root.handlers or ours.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s [%(process)d] %(levelname)s %(message)s")
    )
    ours.addHandler(handler)
    if ours.level == logging.NOTSET:
        ours.setLevel(logging.INFO)
