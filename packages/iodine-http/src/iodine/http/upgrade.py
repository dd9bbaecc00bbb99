"""Handing an HTTP connection over to a native handler (``iodine.upgrade``).

Three kinds of request can leave HTTP behind:

* ``websocket``: ``Upgrade: websocket``; answered with ``101`` and the
  connection becomes a :class:`~iodine.http.websocket.WebSocketConnection`.
* ``sse``: ``Accept`` names ``text/event-stream``; answered with the ``200``
  event-stream head and it becomes an :class:`~iodine.http.sse.SSEConnection`.
* ``raw``: any other ``Upgrade`` (listed in ``Connection``, as RFC 9110
  section 7.8 requires); answered with ``101`` naming the protocol asked for,
  and it becomes a plain core connection whose bytes go to the handler as
  they arrive.

The protocol tags such a request when it parses its head; the ASGI and WSGI
exchanges offer the upgrade to the application, and :func:`switch` carries it
out when the application takes it: the answer is written, the HTTP protocol
lets go of the transport (its parser and buffers are dropped), and the native
connection takes over with the handler.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from iodine.core.connection import Connection
from iodine.http import sse
from iodine.http.headers import encode_head
from iodine.http.websocket import connection as ws_connection
from iodine.http.websocket import handshake
from iodine.http.websocket.connection import WebSocketConnection

if TYPE_CHECKING:
    from iodine.http.exchange import Exchange

logger = logging.getLogger("iodine.http")

WEBSOCKET = "websocket"
SSE = "sse"
RAW = "raw"

# What the switch writes itself, or what makes no sense after it: an
# application's copy of these is left out of the upgrade response.
_FRAMING = frozenset(
    (
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"content-length",
        b"content-type",
    )
)
_DROPPED = {
    WEBSOCKET: _FRAMING
    | {
        b"upgrade",
        b"sec-websocket-accept",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
    },
    SSE: _FRAMING | {b"cache-control", b"x-accel-buffering"},
    RAW: _FRAMING,
}


def request_kind(
    method: str,
    headers: list[tuple[bytes, bytes]],
    upgrade: bytes | None,
    event_stream: bool,
) -> str | None:
    """Which upgrade a request can take, if any (names are lower-case)."""
    if upgrade is not None:
        tokens = [t.strip().lower() for t in upgrade.split(b",")]
        if b"websocket" in tokens:
            # Checked in full (method, Connection, key, version) before the
            # application sees it; a bad handshake gets 400 or 426.
            return WEBSOCKET
        connection = b",".join(v for k, v in headers if k == b"connection")
        if method != "CONNECT" and b"upgrade" in [
            t.strip().lower() for t in connection.split(b",")
        ]:
            return RAW
    if event_stream:
        return SSE
    return None


class RawConnection(Connection):
    """A connection upgraded to a protocol iodine does not speak itself.

    The handler gets the bytes as they arrive, as on a raw TCP connection.

    Attributes:
        scope: The request scope (ASGI) or environ (WSGI) of the upgrade.
    """

    __slots__ = ("scope",)

    def __init__(self, reactor: Any, handler: object, scope: Any) -> None:
        super().__init__(reactor, handler)
        self.scope = scope

    @property
    def env(self) -> Any:
        """The upgrade request's scope or environ (same as ``scope``)."""
        return self.scope


def response_headers(
    kind: str, headers: Iterable[Any] | None
) -> tuple[list[tuple[bytes, bytes]], str | None]:
    """The application's headers that belong in the upgrade response, and the
    subprotocol its ``Sec-WebSocket-Protocol`` header names (WebSocket only).

    Raises:
        ValueError: a header is not a pair of text or bytes.
    """
    kept: list[tuple[bytes, bytes]] = []
    subprotocol = None
    dropped = _DROPPED[kind]
    for name, value in headers or ():
        name_b = name.encode("latin-1") if isinstance(name, str) else bytes(name)
        value_b = value.encode("latin-1") if isinstance(value, str) else bytes(value)
        lower = name_b.lower()
        if lower == b"sec-websocket-protocol" and kind == WEBSOCKET:
            subprotocol = value_b.decode("latin-1").strip()
        if lower not in dropped:
            kept.append((name_b, value_b))
    return kept, subprotocol


def check_websocket(exchange: Exchange) -> handshake.Request | None:
    """Validate a WebSocket handshake; refuse it (400, 426) if it is bad."""
    try:
        return handshake.check_request(exchange.method, exchange.headers)
    except handshake.HandshakeError as exc:
        logger.debug("Refused a WebSocket handshake from %s: %s", exchange.client, exc)
        status = 426 if exc.response.startswith(b"HTTP/1.1 426") else 400
        exchange.answer_raw(exc.response, status)
        return None


def switch(
    exchange: Exchange,
    handler: object,
    *,
    headers: Iterable[Any] | None = None,
    subprotocol: str | None = None,
    scope: Any = None,
    websocket_classes: tuple[type[WebSocketConnection], type[WebSocketConnection]]
    | None = None,
) -> Connection:
    """Answer ``exchange``'s request for ``handler`` and hand the connection
    over to a native connection of the request's kind. Loop thread only.

    Args:
        exchange: The active exchange of an upgradable request.
        handler: The native handler (object, class or factory).
        headers: Extra response headers from the application (cookies).
        subprotocol: The WebSocket subprotocol chosen, if any.
        scope: The scope or environ the connection keeps as ``conn.scope``.
        websocket_classes: The WebSocket connection classes without and with
            compression; native handlers' by default.

    Returns:
        The new connection, open.

    Raises:
        RuntimeError: the request cannot be upgraded (any more).
        ValueError: a header holds CR or LF, or is not a pair; or the
            subprotocol is not one the client offered.
    """
    kind = exchange.upgrade
    if kind is None:
        raise RuntimeError("this request cannot be upgraded")
    extra, named = response_headers(kind, headers)
    subprotocol = subprotocol or named
    protocol = exchange.protocol
    server = protocol.server
    config = server.config
    reactor = server.reactor

    # The answer that ends HTTP on this connection.
    deflate = None
    if kind == WEBSOCKET:
        request = exchange.handshake
        assert request is not None  # checked before the application ran
        if subprotocol and subprotocol not in request.subprotocols:
            # RFC 6455 section 4.1: the client fails a handshake that names
            # a subprotocol it did not offer. Said here, with the names,
            # rather than seen by the client as a broken connection.
            offered = ", ".join(request.subprotocols) or "none"
            raise ValueError(
                f"subprotocol {subprotocol!r} was not offered by the client "
                f"(offered: {offered})"
            )
        if config.websocket_compression and request.extensions:
            deflate = deflate_module().negotiate(
                request.extensions,
                config.websocket_window_bits,
                config.websocket_mem_level,
            )
            if deflate is not None:
                extra.append((b"sec-websocket-extensions", deflate.response))
        head = handshake.accept_response(request.key, subprotocol, extra)
        status = 101
    elif kind == SSE:
        head = sse.response_head(extra)
        status = 200
    else:
        head = _raw_response(exchange, extra)
        status = 101
    transport, leftover = protocol.detach(exchange, head)
    exchange.upgraded(status)
    # uvloop keeps the old protocol's data_received when the new one is a
    # BufferedProtocol (WebSocket connections are), which would hold the
    # HTTP protocol for the life of the connection: 1.5 KiB of server RSS per
    # idle WebSocket (3,000 of them, ASGI and native alike). A shared plain
    # protocol takes its place.
    transport.set_protocol(_RELEASED)

    # The native connection, in the transport's hands from here on. Each
    # takes the HTTP connection's address tuple rather than asking the
    # transport for a new one: an idle connection keeps it for its lifetime.
    conn: Connection
    if kind == WEBSOCKET:
        if websocket_classes is not None:
            cls = websocket_classes[deflate is not None]
        elif deflate is not None:
            cls = deflate_module().DeflateWebSocketConnection
        else:
            cls = WebSocketConnection
        conn = cls(
            reactor,
            handler,
            max_message=config.max_message,
            ping=config.ping,
            scope=scope,
            subprotocol=subprotocol,
        )
        if deflate is not None:
            conn._decoder = deflate.codec(config.max_message)
        conn._on_lost = server.release_connection
        conn.peer = protocol.client
        ws_connection.attach(conn, transport, leftover)
    elif kind == SSE:
        conn = sse.upgrade(
            reactor,
            transport,
            handler,
            scope,
            leftover,
            ping=config.ping,
            last_event_id=sse.last_event_id(exchange.headers),
        )
        conn._on_lost = server.release_connection
    else:
        conn = RawConnection(reactor, handler, scope)
        conn._on_lost = server.release_connection
        conn.peer = protocol.client
        transport.set_protocol(conn)
        conn.connection_made(transport)
        if leftover:
            # Bytes of the new protocol that came with the request head.
            conn._deliver(bytes(leftover))
        if not transport.is_closing() and not transport.is_reading():
            transport.resume_reading()
    return conn


def switch_for_message(
    exchange: Exchange, message: dict[str, Any], scope: Any
) -> Connection:
    """:func:`switch` as an ASGI application asks for it, with an
    ``{"type": "iodine.upgrade", "handler": ..., "headers": ...,
    "subprotocol": ...}`` message."""
    return switch(
        exchange,
        message["handler"],
        headers=message.get("headers"),
        subprotocol=message.get("subprotocol"),
        scope=scope,
    )


class _Released(asyncio.Protocol):
    """What a transport points at between the HTTP protocol and the next."""


_RELEASED = _Released()


def deflate_module() -> Any:
    """``websocket.deflate``, imported on first use: it loads wsproto, which
    only a server with compression on needs."""
    from iodine.http.websocket import deflate  # noqa: PLC0415  # see above

    return deflate


def _raw_response(exchange: Exchange, extra: list[tuple[bytes, bytes]]) -> bytes:
    """``101`` naming the protocol the client asked for, unless the
    application named one itself."""
    block = encode_head(101, extra).block
    if not any(name.lower() == b"upgrade" for name, _ in extra):
        asked = b", ".join(v for k, v in exchange.headers if k == b"upgrade")
        block += b"upgrade: " + asked + b"\r\n"
    return block + b"connection: Upgrade\r\n\r\n"
