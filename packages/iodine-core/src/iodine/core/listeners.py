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
                self._protocol_factory, sock=sock, backlog=BACKLOG
            )
        else:
            self._server = await loop.create_server(
                self._protocol_factory, sock=sock, backlog=BACKLOG
            )

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
