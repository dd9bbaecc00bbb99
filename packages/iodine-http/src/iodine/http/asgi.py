"""ASGI 3 over an HTTP/1.1 exchange: the scope, ``receive`` and ``send``.

The application is started with ``reactor.start_task``: an eager task on
Python 3.12+, so its first step runs at once, inside the read that brought the
request, with ``asyncio.current_task()`` set (anyio, hence Starlette and
FastAPI, need it) and its own copy of the contextvars context. An application
that answers without waiting never costs a loop iteration; pipelined requests
then answer within one read and one write. Python 3.11 has no eager tasks and
gets a plain task: correct, one loop iteration slower.

``receive`` and ``send`` are coroutine functions that return at once when the
body is already read or the transport can take the response (nearly always);
they suspend only to wait for the body or for the transport to drain. Plain
functions returning an already finished future cost more on CPython 3.12 and
3.13: awaiting a finished future still raises and catches a StopIteration
inside the interpreter (about 600 instructions, measured with callgrind),
while a coroutine that returns without waiting raises nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from iodine.http import upgrade
from iodine.http.exchange import BODY, DONE, STARTED, WAITING, Exchange
from iodine.http.headers import encode_head
from iodine.http.proxy import forwarded_client

if TYPE_CHECKING:
    from iodine.http.protocol import HttpProtocol

logger = logging.getLogger("iodine.http")

# Request bodies above this are held back from a reader that is not reading;
# the same value as the protocol's pause threshold.
_HIGH_WATER = 64 * 1024

# Trailer states: none asked for, asked for, body ended and trailers due.
_NO_TRAILERS, _TRAILERS, _TRAILERS_DUE = 0, 1, 2

# Files are sent in pieces of this size, each read on a worker thread.
_FILE_CHUNK = 256 * 1024


class ClientDisconnected(OSError):
    """``send`` after the client went away (ASGI spec 2.4 asks for an OSError).

    Frameworks catch it (Starlette turns it into ``ClientDisconnect``) and stop
    producing a response nobody will read.
    """


# What every scope's "asgi" key says; one dict for all of them.
_ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}


def connection_scope(protocol: HttpProtocol) -> dict[str, Any]:
    """The part of every request's scope that is fixed for a connection."""
    server = protocol.server
    return {
        "type": "http",
        "asgi": _ASGI_VERSION,
        "http_version": "1.1",
        "scheme": protocol.scheme,
        "server": protocol.server_address,
        "client": protocol.client,
        "root_path": server.config.root_path,
        "extensions": {"http.response.trailers": {}, "http.response.pathsend": {}},
        # Replaced per request. Present here so that a copy of the template
        # is already as large as a whole scope and never resizes.
        "method": "GET",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "headers": [],
    }


def request_scope(exchange: Exchange) -> dict[str, Any]:
    """The scope of one request: the connection's template and its parts.

    The caller adds what its scope type needs (``method`` for ``http``).
    """
    protocol = exchange.protocol
    server = protocol.server
    scope = protocol.template.copy()
    scope["http_version"] = exchange.http_version
    raw_path = exchange.raw_path
    # find, not "in": see the note in decode_path.
    if raw_path.find(b"%") >= 0 or not raw_path.isascii():
        path = decode_path(raw_path)
    else:
        path = raw_path.decode("ascii")
    root_path = server.config.root_path
    if root_path:
        scope["path"] = root_path + path
        scope["raw_path"] = server.root_path_bytes + raw_path
    else:
        scope["path"] = path
        scope["raw_path"] = raw_path
    scope["query_string"] = exchange.query
    scope["headers"] = exchange.headers
    if exchange.forwarded and protocol.proxy_trusted:
        exchange.client, exchange.scheme = forwarded_client(
            exchange.headers,
            server.config.forwarded_allow_ips,
            exchange.client,
            "http",
        )
        scope["client"] = exchange.client
        scope["scheme"] = exchange.scheme
    lifespan = server.lifespan
    if lifespan is not None and lifespan.state is not None:
        scope["state"] = lifespan.state.copy()
    return scope


def decode_path(raw_path: bytes) -> str:
    """The percent-decoded, UTF-8 path ASGI puts in ``scope["path"]``."""
    # ``bytes in bytes`` first tries the needle as an integer and pays for
    # the TypeError: about 250 ns on CPython 3.12 and 3.13, ten times what
    # find() costs. On a per-request path that is a visible share.
    if raw_path.find(b"%") >= 0 or not raw_path.isascii():
        return unquote_to_bytes(raw_path).decode("utf-8", "replace")
    return raw_path.decode("ascii")


class AsgiExchange(Exchange):
    """One request served by an ASGI application."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_disconnected",
        "_request_done",
        "_trailer_lines",
        "_trailers",
        "_waiter",
        "scope",
    )

    def _init_interface(self) -> None:
        # Body pieces the application has not received yet; made by the
        # first piece that has to wait (most requests have no body, or are
        # read as they come).
        self._chunks: list[bytes] | None = None
        self._buffered = 0
        self._waiter: asyncio.Future[dict[str, Any]] | None = None
        self._request_done = False
        self._disconnected = False
        self._trailers = _NO_TRAILERS
        self._trailer_lines: list[bytes] | None = None
        # Kept for an upgradable request (see run).
        self.scope: dict[str, Any] | None = None

    # -------------------------------------------------------- running

    def run(self) -> None:
        server = self.protocol.server
        scope = request_scope(self)
        scope["method"] = self.method
        if self.upgrade is not None:
            # An event stream or another protocol the application may switch
            # to with an ``iodine.upgrade`` message (see upgrade.py).
            extensions = scope["extensions"] = dict(scope["extensions"])
            extensions["iodine.upgrade"] = {}
            self.scope = scope

        # The application, eagerly started where Python allows.
        try:
            task = server.reactor.start_task(server.app(scope, self.receive, self.send))
        except Exception:
            logger.exception(
                "The ASGI application failed to start for %s %s.",
                self.method,
                self.target.decode("latin-1"),
            )
            self.fail()
            return
        if task.done():
            # Finished in its first step, as most do: only a failure or a
            # missing response needs _app_done's checks.
            if self.state != DONE or task.cancelled() or task.exception() is not None:
                self._app_done(task)
        else:
            server.tasks.add(task)
            task.add_done_callback(self._app_done)

    def _app_done(self, task: asyncio.Task[Any]) -> None:
        self.protocol.server.tasks.discard(task)
        if task.cancelled():
            error: BaseException | None = asyncio.CancelledError()
        else:
            error = task.exception()
        if error is not None:
            if self._disconnected and isinstance(error, OSError):
                logger.debug("Client gone during %s %s.", self.method, self.target)
            else:
                logger.error(
                    "Exception in the ASGI application for %s %s:",
                    self.method,
                    self.target.decode("latin-1"),
                    exc_info=error,
                )
            self.fail()
        elif self.state != DONE:
            if not self._disconnected:
                logger.error(
                    "The ASGI application returned without completing its "
                    "response to %s %s.",
                    self.method,
                    self.target.decode("latin-1"),
                )
            self.fail()

    # ---------------------------------------------------------- receive

    async def receive(self) -> dict[str, Any]:
        """The next ``http.request`` or ``http.disconnect`` message."""
        if self._chunks or (self.body_done and not self._request_done):
            return self._take_body()
        if self._disconnected or self.state == DONE:
            return {"type": "http.disconnect"}
        if self.expect_continue and not self.continue_sent:
            self.protocol.send_continue(self)
        future: asyncio.Future[dict[str, Any]] = self.protocol.loop.create_future()
        self._waiter = future
        return await future

    def _take_body(self) -> dict[str, Any]:
        chunks = self._chunks
        if not chunks:
            body = b""
        else:
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            chunks.clear()
        if self._buffered > _HIGH_WATER:
            self.protocol.resume_body()
        self._buffered = 0
        more = not self.body_done
        if not more:
            self._request_done = True
        return {"type": "http.request", "body": body, "more_body": more}

    def feed_body(self, data: bytes) -> None:
        if self.state == DONE or self._disconnected:
            return  # answered already: the rest of the body is dropped
        waiter = self._waiter
        if waiter is not None and not self._request_done:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(
                    {"type": "http.request", "body": data, "more_body": True}
                )
                return
        if self._chunks is None:
            self._chunks = [data]
        else:
            self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _HIGH_WATER:
            self.protocol.pause_body()

    def end_body(self) -> None:
        waiter = self._waiter
        if waiter is not None and not self._request_done:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(self._take_body())

    def lost(self) -> None:
        self._disconnected = True
        self._wake_with_disconnect()

    def _wake_with_disconnect(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result({"type": "http.disconnect"})

    def finish(self, trailers: bytes = b"") -> None:
        Exchange.finish(self, trailers)
        # After the response, receive() reports the exchange as over.
        if self._waiter is not None:
            self._wake_with_disconnect()

    def fail(self) -> None:
        super().fail()
        self._wake_with_disconnect()

    # ------------------------------------------------------------- send

    async def send(self, message: dict[str, Any]) -> None:
        """Take one response message; return when the application may go on."""
        kind = message["type"]
        state = self.state
        if kind == "http.response.start":
            if state == WAITING and not self._disconnected:
                status = message["status"]
                self.head = encode_head(status, message.get("headers", ()))
                self.status = status
                self.state = STARTED
                if message.get("trailers", False):
                    self._trailers = _TRAILERS
                return
        elif kind == "http.response.body":
            more = message.get("more_body", False)
            if (
                state == STARTED
                and not more
                and not self._trailers
                and not self._disconnected
                and self._write_sized(message.get("body", b""))
            ):
                # The whole response in one message, written as one piece.
                # What finish() would check is known: no chunks, no bytes
                # owed, nobody waiting in receive() for the request body.
                self.state = DONE
                if self.started:
                    self._log()
                self.protocol.response_done(self)
                if self._waiter is not None:
                    self._wake_with_disconnect()
                return
            if state in (STARTED, BODY):
                self._send_body(message, more)
                protocol = self.protocol
                if protocol.write_paused:
                    await protocol.drain()
                return
        await self._send_other(kind, state, message)

    def _send_body(self, message: dict[str, Any], more: bool) -> None:
        """An ``http.response.body`` message other than a whole body."""
        if self._disconnected:
            raise ClientDisconnected("the client closed the connection")
        if self._trailers:
            if not more and self._trailers == _TRAILERS:
                self._trailers = _TRAILERS_DUE
                more = True
            elif self._trailers == _TRAILERS_DUE:
                raise RuntimeError("http.response.body after the last body")
        self.send_body(message.get("body", b""), more)

    def _send_other(
        self, kind: str, state: int, message: dict[str, Any]
    ) -> asyncio.Future[None]:
        """Every message but a response's start and body, and misplaced ones."""
        if kind == "http.response.trailers" and self._trailers != _NO_TRAILERS:
            return self._send_trailers(message)
        if kind == "http.response.pathsend" and state == STARTED:
            return self.protocol.loop.create_task(self._send_file(message["path"]))
        if kind == "iodine.upgrade" and state == WAITING and self.upgrade:
            if self._disconnected:
                raise ClientDisconnected("the client closed the connection")
            upgrade.switch_for_message(self, message, self.scope)
            self._wake_with_disconnect()
            return self.protocol.done
        if self._disconnected:
            raise ClientDisconnected("the client closed the connection")
        if state == DONE:
            raise RuntimeError(f"ASGI message {kind!r} after the response was complete")
        raise RuntimeError(f"unexpected ASGI message {kind!r} at this point")

    def _send_trailers(self, message: dict[str, Any]) -> asyncio.Future[None]:
        if self._trailers == _TRAILERS:
            raise RuntimeError("http.response.trailers before the end of the body")
        block = encode_head(200, message.get("headers", ())).block
        # Drop the status line; keep the validated header lines.
        lines = self._trailer_lines
        if lines is None:
            lines = self._trailer_lines = []
        lines.append(block[block.index(b"\r\n") + 2 :])
        if not message.get("more_trailers", False) and self.state != DONE:
            self.finish(b"".join(lines) if self.chunked else b"")
        return self.protocol.done

    async def _send_file(self, path: str | os.PathLike[str]) -> None:
        """``http.response.pathsend``: the file as the body, read off the loop.

        Known limitation: the file is read in pieces on a worker thread and
        written through the transport; zero-copy ``sendfile`` comes with the
        static-file service.
        """
        with await asyncio.to_thread(open, path, "rb") as file:
            while True:
                chunk = await asyncio.to_thread(file.read, _FILE_CHUNK)
                if self._disconnected:
                    raise ClientDisconnected("the client closed the connection")
                more = len(chunk) == _FILE_CHUNK
                self.send_body(chunk, more)
                if not more:
                    return
                await self.protocol.drain()
