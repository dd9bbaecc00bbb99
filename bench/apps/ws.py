"""The WebSocket echo apps every server runs.

``bench.apps.ws:app`` is a plain ASGI echo: each message goes back as it came,
text as text, bytes as bytes. ``bench.apps.ws:native_app`` asks iodine to take
the connection over (the ``iodine.upgrade`` extension) and hands it to a native
handler, so no ASGI message is built per frame.
"""

from __future__ import annotations

import logging
from typing import Any

from bench.apps.asgi import Receive, Scope, Send, _lifespan

log = logging.getLogger("iodine.bench")

ACCEPT = {"type": "websocket.accept"}
NOT_FOUND_START = {
    "type": "http.response.start",
    "status": 404,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"0")],
}
EMPTY_BODY = {"type": "http.response.body", "body": b""}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "websocket":
        await send(NOT_FOUND_START)
        await send(EMPTY_BODY)
        return

    # websocket.connect, then echo until the peer goes.
    await receive()
    await send(ACCEPT)
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        text = message.get("text")
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes")})


class NativeEcho:
    """iodine's native WebSocket handler: text comes as str, bytes as bytes,
    and ``write`` sends each back as the same kind of frame."""

    def on_message(self, conn: Any, data: str | bytes) -> None:
        conn.write(data)


# One handler for every connection: it keeps no state of its own.
ECHO = NativeEcho()
UPGRADE = {"type": "iodine.upgrade", "handler": ECHO}


async def native_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "websocket":
        await send(NOT_FOUND_START)
        await send(EMPTY_BODY)
        return
    if "iodine.upgrade" not in scope.get("extensions", {}):
        # Refuse the handshake rather than fall back to ASGI: a figure taken
        # on the wrong path would be reported under the native target's name.
        log.error("The server offers no iodine.upgrade extension; refusing.")
        await send({"type": "websocket.close", "code": 1011})
        return
    await send(UPGRADE)
