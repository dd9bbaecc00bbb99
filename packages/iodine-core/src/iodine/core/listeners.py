"""Listening sockets, bound as soon as ``iodine.listen`` is called.

Binding at once (rather than when the loop starts) means a port already in use
fails at the ``listen`` call with a clear error, and ``port=0`` gives the chosen
port straight away, which tests and tools rely on.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING

from iodine.core.addresses import Endpoint

if TYPE_CHECKING:
    from iodine.core.reactor import Reactor

logger = logging.getLogger("iodine.core")

# Pending-connection queue length. uvicorn uses 2048; Linux caps it at
# net.core.somaxconn (4096 on current kernels), so asking for more gains nothing.
BACKLOG = 2048

# Connections the listener accepts itself per loop turn, on top of the one the
# loop accepts. libuv (1.45 and later, so every current uvloop) takes a single
# connection per turn and leaves the rest queued in the kernel until the next
# poll. A loop busy with open connections turns every few milliseconds, so a
# burst (clients reconnecting after a restart, a proxy opening its pool, a
# benchmark's 1000 connections) waited there for seconds. A bound keeps one
# turn from stalling the connections already open: setting up a connection
# costs tens of microseconds, so 128 of them take a few milliseconds.
ACCEPT_BATCH = 128

ProtocolFactory = Callable[[], asyncio.BaseProtocol]


class ListenError(OSError):
    """A listening socket could not be opened; the message says where and why."""


class Listener:
    """An open listening socket and the service that answers on it.

    Returned by ``iodine.listen``; ``close()`` stops accepting connections (those
    already open carry on).
    """

    def __init__(
        self,
        reactor: Reactor,
        endpoint: Endpoint,
        protocol_factory: ProtocolFactory,
        service: str,
    ) -> None:
        self._reactor = reactor
        self.endpoint = endpoint
        self.service = service
        self._protocol_factory = protocol_factory
        self._sock: socket.socket | None = _bind(endpoint)
        self._server: asyncio.AbstractServer | None = None
        self._draining = False
        # Strong references: the loop keeps only weak ones to running tasks.
        self._adopting: set[asyncio.Task[object]] = set()
        if endpoint.kind == "tcp":
            host, port = self._sock.getsockname()[:2]
            self.endpoint = Endpoint("tcp", host=host, port=port, service=service)

    @property
    def port(self) -> int:
        """The bound TCP port (0 for Unix sockets)."""
        return self.endpoint.port

    @property
    def address(self) -> str:
        """The bound host address or Unix socket path."""
        return self.endpoint.path or self.endpoint.host

    @property
    def url(self) -> str:
        return self.endpoint.url

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    async def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start accepting on ``loop``."""
        sock = self._sock
        if sock is None or self._server is not None:
            return
        if self.endpoint.kind == "unix":
            self._server = await loop.create_unix_server(
                self._accepted_by_loop, sock=sock, backlog=BACKLOG
            )
        else:
            self._server = await loop.create_server(
                self._accepted_by_loop, sock=sock, backlog=BACKLOG
            )

    def _accepted_by_loop(self) -> asyncio.BaseProtocol:
        """The loop accepted a connection; others may be queued behind it.

        The common case (nothing else waiting) costs one ``accept`` that finds
        the queue empty, once per loop turn at most.
        """
        if not self._draining:
            self._draining = True
            self._reactor.loop.call_soon(self._drain)
        return self._protocol_factory()

    def _drain(self) -> None:
        """Accept what is queued, up to :data:`ACCEPT_BATCH` connections.

        Whatever is left keeps the socket readable, so the loop accepts one
        more on its next turn and that starts the next batch.
        """
        self._draining = False
        sock, loop = self._sock, self._reactor.loop
        if sock is None:
            return  # closed since
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                # The client gave up while queued; the next one may be fine.
                continue
            except OSError as exc:
                # Out of descriptors or memory: the loop's own accept has the
                # means to shed connections then (libuv keeps a spare
                # descriptor for it), so leave the queue to it.
                logger.debug("Accepting on %s: %s", self.url, exc)
                return
            self._adopt(loop, conn)

    def _adopt(self, loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
        """Hand a socket accepted here to the loop, as if the loop had."""
        try:
            task = loop.create_task(
                loop.connect_accepted_socket(self._protocol_factory, conn)
            )
        except BaseException:
            conn.close()
            raise
        if not task.done():
            self._adopting.add(task)
        task.add_done_callback(self._adopted)

    def _adopted(self, task: asyncio.Task[object]) -> None:
        self._adopting.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # The transport closed the socket; the protocol factory or the
            # loop failed, which must not stop the listener.
            logger.error("Could not set up a connection on %s.", self.url, exc_info=exc)

    def close(self) -> None:
        """Stop accepting connections. Safe from any thread, and more than once."""
        if not self._reactor.on_loop_thread() and self._server is not None:
            self._reactor.call_soon_threadsafe(self.close)
            return
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._server is not None:
            self._server.close()
            self._server = None
        else:
            sock.close()
        if self.endpoint.kind == "unix":
            with contextlib.suppress(OSError):
                os.unlink(self.endpoint.path)
        self._reactor.forget_listener(self)

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"<Listener {self.url} ({self.service}) {state}>"


def _bind(endpoint: Endpoint) -> socket.socket:
    try:
        if endpoint.kind == "unix":
            return _bind_unix(endpoint.path)
        return _bind_tcp(endpoint.host, endpoint.port)
    except OSError as exc:
        raise ListenError(
            exc.errno, f"cannot listen on {endpoint.url}: {exc.strerror or exc}"
        ) from None


def _bind_tcp(host: str, port: int) -> socket.socket:
    infos = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        # Lets a restarted server bind while old connections sit in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_unix(path: str) -> socket.socket:
    _remove_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _remove_stale_socket(path: str) -> None:
    """Remove a socket file left by a server that died, but never a live one."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(errno.EEXIST, "the path exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)
        logger.info("Removed the stale socket file %s.", path)
        return
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, "another server is listening on this socket")
