"""The ``http`` service: what ``iodine.listen(service="http", ...)`` builds.

iodine-core finds :func:`http_service` through the ``iodine.services`` entry
point and calls it once per listener; the protocol factory it returns makes
one :class:`~iodine.http.protocol.HttpProtocol` per accepted connection.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from iodine.core.handlers import is_coroutine_function
from iodine.http import upgrade
from iodine.http.asgi import AsgiExchange, connection_scope
from iodine.http.config import HttpConfig, from_options
from iodine.http.exchange import Exchange
from iodine.http.lifespan import Lifespan
from iodine.http.protocol import HttpProtocol
from iodine.http.websocket.asgi import WebSocketExchange
from iodine.http.wsgi import WsgiExchange, connection_environ

if sys.platform != "win32":  # Windows has no rlimits
    import resource

if TYPE_CHECKING:
    from iodine.core.reactor import Reactor

logger = logging.getLogger("iodine.http")

_capacity_logged = False


def http_service(
    reactor: Reactor, app: Any, options: dict[str, Any]
) -> Callable[[], asyncio.BaseProtocol]:
    """Build the HTTP service of one listener (the ``iodine.services`` entry).

    Args:
        reactor: The reactor the listener belongs to.
        app: An ASGI 3 application or a WSGI application.
        options: ``listen`` keyword arguments; see :class:`HttpConfig`.

    Returns:
        The listener's protocol factory.

    Raises:
        TypeError: an unknown option, or no application.
        ValueError: an option value that cannot work.
    """
    config = from_options(options)
    if app is None or not callable(app):
        raise TypeError("listen(service='http') needs handler=<ASGI or WSGI app>")
    server = HttpServer(reactor, app, config)
    if raise_open_files_limit():
        _announce_capacity(reactor, config.fd_reserve)
    if server.interface == "asgi" and config.lifespan != "off":
        server.start_lifespan()
    return server.make_protocol


def detect_interface(app: Any, interface: str) -> str:
    """``"asgi"`` or ``"wsgi"``: the one asked for, or what ``app`` looks like.

    An ASGI application is a coroutine function or an object whose
    ``__call__`` is one (Starlette, FastAPI, Django's ASGIHandler); anything
    else callable is taken for WSGI (Flask, Django's WSGIHandler).
    """
    if interface != "auto":
        return interface
    return "asgi" if is_coroutine_function(app) else "wsgi"


class HttpServer:
    """What the connections of one HTTP listener share."""

    def __init__(self, reactor: Reactor, app: Any, config: HttpConfig) -> None:
        self.reactor = reactor
        self.app = app
        self.config = config
        self.interface = detect_interface(app, config.interface)
        self.exchange_class: type[Exchange]
        if self.interface == "asgi":
            self.exchange_class = AsgiExchange
            self.connection_template: Callable[[HttpProtocol], dict[str, Any]] = (
                connection_scope
            )
        else:
            self.exchange_class = WsgiExchange
            self.connection_template = connection_environ
        self.access_log = config.access_log
        self.server_line = (
            f"server: {config.server_header}\r\n".encode("latin-1")
            if config.server_header
            else b""
        )
        self.root_path_bytes = config.root_path.encode("utf-8")
        self.connections = 0
        # One bound method for every upgraded connection to call when it
        # ends (made once: a bound method per connection would cost memory).
        self.release_connection = self._release_connection
        # Application tasks that suspended: asyncio keeps only weak references
        # to tasks, so these are held here until they finish.
        self.tasks: set[asyncio.Task[Any]] = set()
        self.lifespan: Lifespan | None = None
        self._done_future: asyncio.Future[None] | None = None
        # Calls handed to the loop by WSGI threads (see post_from_thread).
        self._posted: deque[tuple[Callable[..., object], tuple[Any, ...]]] = deque()
        self._wake_pending = False

    @property
    def done_future(self) -> asyncio.Future[None]:
        """A finished future, shared: awaiting it never suspends."""
        future = self._done_future
        if future is None or future.get_loop() is not self.reactor.loop:
            future = self._done_future = self.reactor.loop.create_future()
            future.set_result(None)
        return future

    def post_from_thread(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop, in the order posted. Any thread.

        Under load many threads finish at once; they share one wake-up of
        the loop (a system call each) instead of paying one per call. The
        flag is cleared before the queue is drained, so a call queued while
        a wake-up is pending is always run by it.
        """
        self._posted.append((fn, args))
        if not self._wake_pending:
            self._wake_pending = True
            self.reactor.call_soon_threadsafe(self._run_posted)

    def _run_posted(self) -> None:
        self._wake_pending = False
        posted = self._posted
        while posted:
            fn, args = posted.popleft()
            try:
                fn(*args)
            except Exception:
                logger.exception("A call from a WSGI thread failed.")

    def upgrade_exchange_class(self, kind: str) -> type[Exchange]:
        """The exchange for an upgradable request: ASGI's WebSocket scope has
        its own; everything else goes through the interface's usual one."""
        if kind == upgrade.WEBSOCKET and self.interface == "asgi":
            return WebSocketExchange
        return self.exchange_class

    def _release_connection(self) -> None:
        self.connections -= 1

    def make_protocol(self) -> HttpProtocol:
        return HttpProtocol(self)

    def admit(self, transport: asyncio.BaseTransport) -> bool:
        """Count a new connection in, or say it is over capacity."""
        config = self.config
        if (
            config.max_connections is not None
            and self.connections >= config.max_connections
        ):
            logger.warning(
                "Refusing a connection: %d open, the cap is %d.",
                self.connections,
                config.max_connections,
            )
            return False
        if config.fd_reserve and _descriptors_left(transport) < config.fd_reserve:
            logger.warning(
                "Refusing a connection: fewer than %d file descriptors left.",
                config.fd_reserve,
            )
            return False
        self.connections += 1
        return True

    def start_lifespan(self) -> None:
        """Run lifespan start-up before serving, and shutdown after it."""
        lifespan = self.lifespan = Lifespan(
            self.reactor, self.app, self.config.lifespan
        )
        hooks = self.reactor.hooks

        async def finish() -> None:
            # Hooks outlive a run; this listener's lifespan must not.
            hooks.remove("pre_start", lifespan.startup)
            hooks.remove("on_finish", finish)
            await lifespan.shutdown()

        hooks.add("on_finish", finish)
        if self.reactor.is_running:

            def start_now() -> None:
                task = self.reactor.loop.create_task(lifespan.startup())
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

            self.reactor.call_soon_threadsafe(start_now)
        else:
            hooks.add("pre_start", lifespan.startup)


def _descriptors_left(transport: asyncio.BaseTransport) -> int:
    """Free descriptors, judged by the number the new socket got.

    POSIX hands out the lowest free number, so a socket numbered ``n`` means
    ``0..n`` are all open: the process has at most ``limit - n - 1`` left.
    That costs nothing per connection, unlike counting ``/proc/self/fd``.
    """
    sock = transport.get_extra_info("socket")
    if sock is None or _open_files_limit is None:
        return sys.maxsize
    return _open_files_limit - int(sock.fileno()) - 1


_open_files_limit: int | None = None


def raise_open_files_limit() -> bool:
    """Raise the soft open-files limit to the hard one; True the first time.

    Like Ruby iodine: the default soft limit (often 1024) is what caps a
    server's connections, and the hard limit is there to be used. Done once
    per process.
    """
    global _capacity_logged, _open_files_limit
    if _capacity_logged:
        return False
    _capacity_logged = True
    if sys.platform == "win32":  # pragma: no cover
        return False
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        # "Unlimited" is not a number the kernel takes for a soft limit;
        # 2**20 is Linux's default nr_open.
        target = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            logger.debug("Could not raise the open-files limit above %d.", soft)
    _open_files_limit = None if soft == resource.RLIM_INFINITY else soft
    return True


def _announce_capacity(reactor: Reactor, reserve: int) -> None:
    """Log the connection capacity once logging is set up (at start-up)."""

    def announce() -> None:
        reactor.hooks.remove("pre_start", announce)
        limit = _open_files_limit
        logger.info(
            "Open-files limit %s: room for about %s connections "
            "(%d descriptors kept for the application).",
            "unlimited" if limit is None else limit,
            "unlimited" if limit is None else max(limit - reserve, 0),
            reserve,
        )

    if reactor.is_running:
        announce()
    else:
        reactor.hooks.add("pre_start", announce)
