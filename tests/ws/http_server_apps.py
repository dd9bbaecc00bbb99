"""The ASGI application of ``asgi_ws_apps`` with one more route, for the
tests that push the real HTTP server's WebSockets to their limits
(``test_http_server_limits.py``).

``/raises`` hands its WebSocket to :class:`Raising`, a native handler whose
``on_message`` raises. A server process whose environment holds
``IODINE_TEST_SHUTDOWN_TIMEOUT`` waits that many seconds at a graceful stop:
the reactor's settings have no ``listen`` option, and the test server script
only passes those.
"""

from __future__ import annotations

import os
from typing import Any

import iodine
from tests.ws.asgi_ws_apps import Receive, Scope, Send, mark
from tests.ws.asgi_ws_apps import app as asgi_ws_app

SHUTDOWN_TIMEOUT_VARIABLE = "IODINE_TEST_SHUTDOWN_TIMEOUT"

if SHUTDOWN_TIMEOUT_VARIABLE in os.environ:
    iodine.settings.shutdown_timeout = float(os.environ[SHUTDOWN_TIMEOUT_VARIABLE])


class Raising:
    """Greets, then raises on every message; reports its close."""

    def on_open(self, conn: Any) -> None:
        conn.write("ready")

    def on_message(self, conn: Any, data: str | bytes) -> None:
        raise RuntimeError(f"boom on {data!r}")

    def on_close(self, conn: Any, reason: Any) -> None:
        error = type(conn.error).__name__
        mark(f"raising-close {reason.name} {conn.close_code} {error}")


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket" and scope["path"] == "/raises":
        await receive()
        await send({"type": "iodine.upgrade", "handler": Raising})
        return
    await asgi_ws_app(scope, receive, send)
