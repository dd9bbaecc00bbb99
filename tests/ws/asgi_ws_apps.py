"""ASGI applications and native handlers the WebSocket tests run in server
processes (see ``tests/http/conftest.py``).

``app`` answers by path, so one server process covers many tests. What the
tests cannot see on the wire (a disconnect code, a native ``on_close``) is
written to stderr as a ``MARK`` line, which they find in the server's log.
"""

from __future__ import annotations

import gc
import json
import sys
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

Scope = dict[str, Any]
Receive = Any
Send = Any


def mark(text: str) -> None:
    sys.stderr.write(f"MARK {text}\n")
    sys.stderr.flush()


def _text(value: bytes) -> str:
    return value.decode("latin-1")


def _where(scope: Scope) -> str:
    return scope["path"] + "?" + _text(scope["query_string"])


def scope_json(scope: Scope) -> str:
    """The parts of a scope a test checks, as JSON."""
    return json.dumps(
        {
            "keys": sorted(scope),
            "type": scope["type"],
            "asgi": scope["asgi"],
            "http_version": scope["http_version"],
            "scheme": scope["scheme"],
            "path": scope["path"],
            "raw_path": _text(scope["raw_path"]),
            "query_string": _text(scope["query_string"]),
            "root_path": scope["root_path"],
            "headers": [[_text(k), _text(v)] for k, v in scope["headers"]],
            "subprotocols": scope.get("subprotocols"),
            "client": scope["client"],
            "server": scope["server"],
            "extensions": sorted(scope.get("extensions") or {}),
        }
    )


# ------------------------------------------------------------ native handlers


class NativeEcho:
    """A native WebSocket handler: greets, echoes, reports its close."""

    def on_open(self, conn: Any) -> None:
        conn.write(f"open {conn.protocol} {conn.scope['type']} {conn.scope['path']}")
        if conn.protocol == "websocket":
            conn.write(f"subprotocol {conn.subprotocol}")

    def on_message(self, conn: Any, data: str | bytes) -> None:
        if data == "close please":
            conn.close(4002, "native bye")
            return
        conn.write(data)

    def on_close(self, conn: Any, reason: Any) -> None:
        code = conn.close_code
        mark(f"native-close {_where(conn.scope)} {reason.name} {code}")


class NativeRaw:
    """The handler of an ``Upgrade: foo`` connection: echoes bytes, upper-cased."""

    def on_open(self, conn: Any) -> None:
        scope = conn.scope
        conn.write(f"open {conn.protocol} {scope['type']} {scope['path']}\n".encode())

    def on_message(self, conn: Any, data: bytes) -> None:
        conn.write(data.upper())

    def on_close(self, conn: Any, reason: Any) -> None:
        mark(f"native-close {_where(conn.scope)} {reason.name}")


class NativeStream:
    """An SSE handler: two events at once, a last one at shutdown."""

    def on_open(self, conn: Any) -> None:
        conn.write(f"open {conn.protocol} {conn.scope['type']} {conn.scope['path']}")
        conn.write_sse("second", id="2", event="tick")

    def on_shutdown(self, conn: Any) -> None:
        conn.write_sse("bye", event="shutdown")

    def on_close(self, conn: Any, reason: Any) -> None:
        mark(f"native-close {_where(conn.scope)} {reason.name}")


# ---------------------------------------------------------------- the app


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        return  # no lifespan support: the server carries on ("auto")
    path = scope["path"]
    if scope["type"] == "http":
        await _http(scope, receive, send, path)
        return
    assert scope["type"] == "websocket"
    mark(f"websocket-app {_where(scope)}")
    if path.startswith("/scope"):
        await _scope(scope, receive, send)
        return
    handler = _WEBSOCKET.get(path, _echo)
    await handler(scope, receive, send)


async def _respond(send: Send, body: bytes, status: int = 200) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _http(scope: Scope, receive: Receive, send: Send, path: str) -> None:
    extensions = scope["extensions"]
    if path == "/scope":
        await _respond(send, scope_json(scope).encode())
        return
    if path == "/upgrade-anyway":
        # Not upgradable: send raises RuntimeError, and the client gets 500.
        await send({"type": "iodine.upgrade", "handler": NativeRaw()})
        return
    if path in ("/sse", "/raw") and "iodine.upgrade" in extensions:
        handler = NativeStream() if path == "/sse" else NativeRaw()
        await send(
            {
                "type": "iodine.upgrade",
                "handler": handler,
                "headers": [(b"x-upgraded", b"yes"), (b"content-length", b"99")],
            }
        )
        # Returning at once is allowed: the connection is the handler's now.
        return
    await _respond(send, b"plain " + path.encode())


async def _accept(receive: Receive, send: Send, **accept: Any) -> None:
    message = await receive()
    assert message["type"] == "websocket.connect", message
    await send({"type": "websocket.accept", **accept})


async def _scope(scope: Scope, receive: Receive, send: Send) -> None:
    await _accept(receive, send)
    await send({"type": "websocket.send", "text": scope_json(scope)})
    await receive()


async def _pick(scope: Scope, receive: Receive, send: Send) -> None:
    """Accepts with the subprotocol its query names, offered or not."""
    await _accept(receive, send, subprotocol=scope["query_string"].decode())
    await send({"type": "websocket.send", "text": "accepted"})
    await receive()


async def _echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Echo until the client goes; ``"close please"`` closes with 4000."""
    offered = scope["subprotocols"]
    await _accept(
        receive,
        send,
        subprotocol=offered[-1] if offered else None,
        headers=[(b"x-accepted", b"yes"), (b"set-cookie", b"a=b")],
    )
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            code, reason = message["code"], message.get("reason", "")
            mark(f"asgi-disconnect {_where(scope)} {code} {reason!r}")
            return
        text = message.get("text")
        if text == "close please":
            await send({"type": "websocket.close", "code": 4000, "reason": "bye now"})
            continue  # the disconnect follows
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def _deny(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send(
        {
            "type": "websocket.http.response.start",
            "status": 401,
            "headers": [(b"content-type", b"text/plain"), (b"x-denied", b"1")],
        }
    )
    await send(
        {"type": "websocket.http.response.body", "body": b"not ", "more_body": True}
    )
    await send({"type": "websocket.http.response.body", "body": b"allowed"})


async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.close"})


async def _fail_before(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    raise RuntimeError("boom before accept")


async def _fail_after(scope: Scope, receive: Receive, send: Send) -> None:
    await _accept(receive, send)
    await send({"type": "websocket.send", "text": "accepted"})
    await receive()  # the client's message, then the failure
    raise RuntimeError("boom after accept")


async def _return_after(scope: Scope, receive: Receive, send: Send) -> None:
    await _accept(receive, send)
    await send({"type": "websocket.send", "text": "done"})


async def _native(scope: Scope, receive: Receive, send: Send) -> None:
    """Hand the WebSocket to :class:`NativeEcho` and return at once."""
    await receive()
    offered = scope["subprotocols"]
    await send(
        {
            "type": "iodine.upgrade",
            "handler": NativeEcho,
            "headers": [(b"x-native", b"yes")],
            "subprotocol": offered[0] if offered else None,
        }
    )


async def _send_after_close(scope: Scope, receive: Receive, send: Send) -> None:
    """Report what ``send`` does once the client has gone."""
    await _accept(receive, send)
    message = await receive()
    assert message["type"] == "websocket.disconnect", message
    try:
        await send({"type": "websocket.send", "text": "too late"})
    except OSError as exc:
        mark(f"send-after-close {type(exc).__name__}")


async def _census(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer each message with the HTTP-side objects still alive."""
    await _accept(receive, send)
    names = ("HttpProtocol", "WebSocketExchange", "AsgiExchange")
    while (await receive())["type"] == "websocket.receive":
        gc.collect()
        alive = dict.fromkeys(names, 0)
        for thing in gc.get_objects():
            name = type(thing).__name__
            if name in alive:
                alive[name] += 1
        await send({"type": "websocket.send", "text": json.dumps(alive)})


_WEBSOCKET = {
    "/pick": _pick,
    "/census": _census,
    "/deny": _deny,
    "/refuse": _refuse,
    "/fail-before": _fail_before,
    "/fail-after": _fail_after,
    "/return": _return_after,
    "/native": _native,
    "/send-after-close": _send_after_close,
}


# ------------------------------------------------------------- Starlette


async def _starlette_echo(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol="chat")
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            if message.get("text") is not None:
                await websocket.send_text("starlette " + message["text"])
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect as exc:
        mark(f"starlette-disconnect {exc.code}")


starlette_app = Starlette(routes=[WebSocketRoute("/ws", _starlette_echo)])
