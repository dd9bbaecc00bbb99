"""A WSGI application that takes native upgrades, and its handlers, for the
tests in ``test_wsgi_upgrade.py`` (run in a server process, see
``tests/http/conftest.py``).

``app`` answers by path, so one server process covers every test. What the
tests cannot see on the wire (that the application ran, that ``close()`` was
called) is written to stderr as a ``MARK`` line, which they find in the
server's log.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], None]]


def mark(text: str) -> None:
    sys.stderr.write(f"MARK {text}\n")
    sys.stderr.flush()


# ------------------------------------------------------------ native handlers


class WebSocketEcho:
    """Says what it got the environ and subprotocol as, then echoes each
    message with the type it arrived as (text as str, binary as bytes)."""

    def on_open(self, conn: Any) -> None:
        env = conn.env
        conn.write(
            f"open {conn.protocol} {env['PATH_INFO']}?{env['QUERY_STRING']} "
            f"{env['iodine.upgrade?']} env-is-scope={env is conn.scope} "
            f"subprotocol={conn.subprotocol}"
        )

    def on_message(self, conn: Any, data: str | bytes) -> None:
        if isinstance(data, str):
            conn.write("str " + data)
        else:
            conn.write(b"bytes " + data)


class EventStream:
    """Two events, then the end of the stream."""

    def on_open(self, conn: Any) -> None:
        conn.write(f"hello {conn.protocol} {conn.scope['PATH_INFO']}")
        conn.write_sse(f"last={conn.last_event_id}", id="7", event="tick")
        conn.close()


class RawEcho:
    """The handler of an ``Upgrade: foo`` connection: bytes back, upper-cased."""

    def on_open(self, conn: Any) -> None:
        conn.write(f"raw {conn.protocol} {conn.scope['HTTP_UPGRADE']}\n".encode())

    def on_message(self, conn: Any, data: bytes) -> None:
        conn.write(data.upper())


# ----------------------------------------------------------------- bodies


class ClosingBody:
    """A body that marks its ``close()`` (PEP 3333: always called)."""

    def __init__(self, path: str, pieces: Iterable[bytes]) -> None:
        self.path = path
        self.pieces = pieces

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.pieces)

    def close(self) -> None:
        mark(f"closed {self.path}")


def _event_stream(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    # A generator application: it takes the upgrade when first iterated,
    # before it yields any bytes (the empty piece is not output).
    environ["iodine.upgrade"] = EventStream
    start_response("200 OK", [("Set-Cookie", "stream=1")])
    yield b""
    yield b"never sent"


def _late_generator(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"partial"
    environ["iodine.upgrade"] = WebSocketEcho


# ---------------------------------------------------------------- the app


def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    kind = environ.get("iodine.upgrade?")
    mark(f"app {path} {kind}")

    if path == "/ws" and kind == "websocket":
        environ["iodine.upgrade"] = WebSocketEcho
        start_response(
            "204 Ignored",
            [
                ("Set-Cookie", "session=abc; Path=/"),
                ("Sec-WebSocket-Protocol", "chat.v2"),
                ("Content-Length", "10"),
            ],
        )
        return ClosingBody(path, [b"never sent"])

    if path == "/sse" and kind == "sse":
        return _event_stream(environ, start_response)

    if path == "/raw" and "HTTP_UPGRADE" in environ:
        environ["iodine.upgrade.tcp"] = RawEcho()
        start_response("200 OK", [("X-Raw", "yes")])
        return ClosingBody(path, [])

    if path == "/late-write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"partial")
        environ["iodine.upgrade"] = WebSocketEcho
        return ClosingBody(path, [b" and more"])

    if path == "/late-yield":
        return _late_generator(environ, start_response)

    if path == "/wrong-kind":
        environ["iodine.upgrade.tcp"] = RawEcho
        start_response("200 OK", [])
        return ClosingBody(path, [])

    if path == "/not-a-handler":
        environ["iodine.upgrade"] = "not a handler"
        start_response("200 OK", [])
        return ClosingBody(path, [])

    # Plain HTTP; a list is sent whole, with the Content-Length it needs.
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"plain {path} {kind}".encode()]
