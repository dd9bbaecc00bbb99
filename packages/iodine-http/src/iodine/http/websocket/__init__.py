"""WebSocket: framing, the opening handshake, native connections, the client.

``frames`` and ``handshake`` are sans-IO; ``connection`` adapts them to a
core connection after the HTTP layer's ``101`` (see :func:`upgrade`);
``client`` opens ``ws://`` URLs for ``iodine.connect``.
"""

from __future__ import annotations

from iodine.http.websocket.connection import (
    DEFAULT_MAX_MESSAGE,
    DEFAULT_PING,
    WebSocketConnection,
    upgrade,
)
from iodine.http.websocket.frames import ProtocolError
from iodine.http.websocket.handshake import HandshakeError

__all__ = [
    "DEFAULT_MAX_MESSAGE",
    "DEFAULT_PING",
    "HandshakeError",
    "ProtocolError",
    "WebSocketConnection",
    "upgrade",
]
