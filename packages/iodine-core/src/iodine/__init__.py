"""iodine: a fast, batteries-included server for real-time Python applications.

This package (from ``iodine-core``) is the runtime: listening sockets and client
connections driven by handler callbacks, timers, a thread pool and lifecycle
hooks, all on one event loop (uvloop where available). Other iodine packages add
``iodine.http``, ``iodine.cli`` and so on to this namespace.

A raw TCP echo server::

    import iodine

    class Echo:
        def on_message(self, conn, data):
            conn.write(data)

    iodine.listen(port=3000, handler=Echo)
    iodine.run()
"""

from __future__ import annotations

# The other iodine distributions install subpackages into this namespace from
# their own directories (editable installs keep them apart on disk), so the
# package path must take in every ``iodine`` folder on sys.path.
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

from collections.abc import Callable
from typing import Any

from iodine.core.addresses import DEFAULT_PORT
from iodine.core.connection import (
    CloseReason,
    Connection,
    MissingPackageError,
)
from iodine.core.hooks import EVENTS
from iodine.core.listeners import Listener, ListenError
from iodine.core.reactor import Reactor
from iodine.core.services import register_client, register_service
from iodine.core.settings import Settings
from iodine.core.timers import Timer
from iodine.core.version import VERSION

__version__ = VERSION

__all__ = [
    "DEFAULT_PORT",
    "EVENTS",
    "CloseReason",
    "Connection",
    "ListenError",
    "Listener",
    "MissingPackageError",
    "Reactor",
    "Settings",
    "Timer",
    "__version__",
    "connect",
    "defer",
    "listen",
    "on_state",
    "reactor",
    "register_client",
    "register_service",
    "run",
    "run_after",
    "run_every",
    "settings",
    "stop",
]

reactor = Reactor()
"""The process's reactor; the functions below act on it."""

settings: Settings = reactor.settings
"""Settings read when :func:`run` starts (threads, callbacks, limits...)."""


def listen(
    *,
    url: str | None = None,
    port: int | str | None = None,
    address: str | None = None,
    handler: object = None,
    service: str | None = None,
    tls: object = None,
    **options: Any,
) -> Listener:
    """Open a listening socket now; it accepts connections while iodine runs.

    Args:
        url: Instead of ``port``/``address``: ``tcp://127.0.0.1:3000``,
            ``unix:///run/app.sock``, ``raw://host:port`` or ``http://host:port``
            (the scheme then names the service).
        port: TCP port; 0 picks a free one (see ``Listener.port``). Default 3000.
        address: Host address to bind (default ``127.0.0.1``) or a Unix socket
            path (anything with a ``/`` or ending in ``.sock``).
        handler: For ``raw``, the connection handler (an object with ``on_*``
            callbacks, a class or a factory); for ``http``, the application.
        service: ``"raw"`` (default) or a service another package provides, such
            as ``"http"`` from iodine-http.
        tls: Reserved for TLS settings, which this version does not provide.
        **options: Options of the service; ``raw`` takes ``timeout`` (idle
            seconds for each connection).

    Returns:
        The :class:`Listener`; ``close()`` it to stop accepting.

    Raises:
        ListenError: the address is in use or cannot be bound.
        ValueError: unknown service or URL scheme, or a bad port.
    """
    return reactor.listen(
        url=url,
        port=port,
        address=address,
        handler=handler,
        service=service,
        tls=tls,
        **options,
    )


def connect(
    url: str | None = None,
    *,
    address: str | None = None,
    port: int | str | None = None,
    handler: object,
    timeout: float = 0,
    **options: Any,
) -> Connection:
    """Open an outgoing connection driven by ``handler``.

    The connection opens once iodine runs (at once if it already does). Writes
    made before it opens are sent when it does. A failed connect never raises: it
    calls ``on_close(conn, CloseReason.CONNECT_FAILED)`` with ``conn.error`` set.

    Args:
        url: ``tcp://host:port``, ``raw://host:port`` or ``unix:///path``; other
            schemes (``ws://``) are opened by the package that speaks them.
        address: Host or Unix socket path, instead of ``url``.
        port: TCP port, with ``address``.
        handler: An object with ``on_*`` callbacks, a class or a factory.
        timeout: Idle seconds before ``on_timeout``; 0 for none.
        **options: Options of the scheme's client (none for raw connections).
    """
    conn: Connection = reactor.connect(
        url, address=address, port=port, handler=handler, timeout=timeout, **options
    )
    return conn


def run(threads: int | None = None, workers: int | None = None) -> None:
    """Run until :func:`stop` (or SIGINT/SIGTERM), then shut down gracefully.

    Args:
        threads: Overrides ``settings.threads``.
        workers: Overrides ``settings.workers`` (only 1 is available yet).
    """
    reactor.run(threads=threads, workers=workers)


def stop() -> None:
    """Stop gracefully: ``on_shutdown`` for every connection, then close. Any thread."""
    reactor.stop()


def run_after(ms: float, fn: Callable[[], Any]) -> Timer:
    """Call ``fn`` once, ``ms`` milliseconds from now (or from start-up)."""
    return reactor.run_after(ms, fn)


def run_every(
    ms: float, fn: Callable[[], Any], repetitions: int | None = None
) -> Timer:
    """Call ``fn`` every ``ms`` milliseconds, ``repetitions`` times or forever."""
    return reactor.run_every(ms, fn, repetitions)


def defer(fn: Callable[[], Any]) -> Timer:
    """Call ``fn`` on the reactor as soon as possible (at start-up, if not running)."""
    return reactor.defer(fn)


def on_state(event: str, fn: Callable[[], Any]) -> None:
    """Run ``fn`` at a lifecycle event (``pre_start``, ``on_start``,
    ``start_shutdown``, ``on_finish``, ...; see ``iodine.EVENTS``).

    Start-type events run their hooks in registration order, shutdown-type ones
    (``start_shutdown``, ``on_finish``) in reverse.
    """
    reactor.hooks.add(event, fn)
