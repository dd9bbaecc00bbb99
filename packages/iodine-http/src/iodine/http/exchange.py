"""One request and its response: what ASGI and WSGI have in common.

The protocol makes an :class:`Exchange` for each request head it parses and
feeds it the body; the interface subclass (``asgi.AsgiExchange``,
``wsgi.WsgiExchange``) runs the application. The response framing lives here,
once for both interfaces: Content-Length when the length is known, chunked
transfer coding when it is not (HTTP/1.1), a close-delimited body for HTTP/1.0,
no body at all for HEAD, 1xx, 204 and 304 (RFC 9110 sections 6.4.1, 9.3.2).

Everything in this module runs on the event loop thread.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from iodine.http import accesslog
from iodine.http.headers import Head, date_line, encode_head, simple_response

if TYPE_CHECKING:
    from iodine.http.protocol import HttpProtocol
    from iodine.http.websocket.handshake import Request

logger = logging.getLogger("iodine.http")

# Response states.
WAITING = 0  # nothing sent by the application yet
STARTED = 1  # status and headers given, not yet written (they go with the body)
BODY = 2  # head written, body under way
DONE = 3  # response complete (or given up); later sends are errors

_LAST_CHUNK = b"0\r\n\r\n"


class Exchange:
    """A parsed request head and the state of its response.

    Attributes:
        method: Request method as text (``"GET"``).
        target: The request target exactly as received.
        raw_path: The path part of the target, still percent-encoded.
        query: The query string, without the ``?``.
        http_version: ``"1.1"`` or ``"1.0"``.
        headers: ``(lowercased name, value)`` pairs as received.
        keep_alive: The connection may carry another request after this one.
        expect_continue: The client sent ``Expect: 100-continue`` and waits
            for a ``100 Continue`` before it sends the body.
        body_done: The whole request body has been received.
        forwarded: A proxy header is present (see ``proxy.py``).
        upgrade: The upgrade the request can take (``upgrade.WEBSOCKET``,
            ``SSE`` or ``RAW``), or None.
        handshake: The validated WebSocket handshake, once checked.
    """

    # Every attribute is a slot, set in __init__. Class-level defaults would
    # save stores, but CPython cannot specialize a read of an attribute
    # that an instance shadows on its class, and an instance that gains
    # attributes after __init__ outgrows its inline values: both were
    # measured on this path (each read or store several times slower).
    # Subclasses add slots of their own and set them in _init_interface.
    __slots__ = (
        "__weakref__",
        "body_done",
        "body_size",
        "chunked",
        "client",
        "continue_sent",
        "expect_continue",
        "forwarded",
        "handshake",
        "head",
        "headers",
        "http_version",
        "keep_alive",
        "method",
        "no_body",
        "protocol",
        "query",
        "raw_path",
        "remaining",
        "scheme",
        "sent",
        "started",
        "state",
        "status",
        "target",
        "upgrade",
    )

    def __init__(  # noqa: PLR0917  # positional: built on every request
        self,
        protocol: HttpProtocol,
        method: str,
        target: bytes,
        raw_path: bytes,
        query: bytes,
        http_version: str,
        headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
    ) -> None:
        self.protocol = protocol
        self.method = method
        self.target = target
        self.raw_path = raw_path
        self.query = query
        self.http_version = http_version
        self.headers = headers
        self.keep_alive = keep_alive
        self.client = protocol.client
        self.scheme = protocol.scheme
        # Set by the protocol after construction, for the few requests that
        # have them.
        self.expect_continue = False
        self.forwarded = False
        self.upgrade: str | None = None
        self.continue_sent = False
        self.body_done = False
        self.body_size = 0
        self.handshake: Request | None = None
        # The response.
        self.state = WAITING
        self.status = 0
        self.head: Head | None = None
        self.chunked = False
        self.no_body = False
        self.remaining: int | None = None
        self.sent = 0
        self.started = time.perf_counter() if protocol.server.access_log else 0.0
        self._init_interface()

    def _init_interface(self) -> None:
        """Set the slots an interface subclass adds (it must set them all)."""

    # ------------------------------------------- what the protocol calls

    def run(self) -> None:
        """Start the application on this request. Never raises."""
        raise NotImplementedError

    def feed_body(self, data: bytes) -> None:
        """A piece of the request body arrived."""
        raise NotImplementedError

    def end_body(self) -> None:
        """The request body is complete."""
        raise NotImplementedError

    def lost(self) -> None:
        """The connection closed (or broke) before the exchange finished."""
        raise NotImplementedError

    def writing_resumed(self) -> None:
        """The transport drained its write buffer after a pause."""

    # -------------------------------------------------- response framing

    def start_response(self, status: int, headers: Any) -> None:
        """Validate and keep the head; it is written with the first body.

        Raises:
            ResponseError: the status or a header is invalid.
        """
        self.head = encode_head(status, headers)
        self.status = status
        self.state = STARTED

    def send_body(self, data: bytes, more: bool) -> None:
        """Write a piece of the body (the head too, the first time)."""
        if self.state == STARTED:
            self._write_head(data, more)
        elif self.no_body:
            pass
        elif self.chunked:
            if data:
                self.sent += len(data)
                self.protocol.write(b"%x\r\n%s\r\n" % (len(data), data))
        elif data:
            self._write_counted(data)
        if not more and self.state != DONE:
            self.finish()

    def finish(self, trailers: bytes = b"") -> None:
        """End the response: the last chunk (with trailers), then the next."""
        if self.chunked:
            self.protocol.write(b"0\r\n%s\r\n" % trailers if trailers else _LAST_CHUNK)
        elif self.remaining:
            # Fewer bytes than the Content-Length promised: the client would
            # wait for the rest, so the connection has to go.
            logger.error(
                "The application sent %d bytes less than its Content-Length "
                "for %s %s; closing the connection.",
                self.remaining,
                self.method,
                self.target.decode("latin-1"),
            )
            self.keep_alive = False
        self.state = DONE
        if self.started:
            self._log()
        self.protocol.response_done(self)

    def fail(self) -> None:
        """The application failed: a 500 if nothing was written, else close."""
        if self.state == DONE:
            return
        if self.state == BODY:
            # Part of the response is on the wire; an unfinished body is the
            # only way left to tell the client something went wrong.
            self.state = DONE
            self.keep_alive = False
            self.protocol.response_failed(self)
            return
        self.state = DONE
        self.status = 500
        self.protocol.write(
            simple_response(500, self.protocol.server.server_line, close=False)
            if self.keep_alive
            else simple_response(500, self.protocol.server.server_line)
        )
        if self.started:
            self._log()
        self.protocol.response_done(self)

    def answer_raw(self, data: bytes, status: int) -> None:
        """Answer with a whole response the server built (a refused
        handshake), then close the connection."""
        self.keep_alive = False
        self.state = DONE
        self.status = status
        self.protocol.write(data)
        if self.started:
            self._log()
        self.protocol.response_done(self)

    def upgraded(self, status: int) -> None:
        """The connection left HTTP with this request (see ``upgrade``)."""
        self.state = DONE
        self.status = status
        if self.started:
            self._log()

    # ------------------------------------------------------------ helpers

    def _write_sized(self, data: bytes) -> bool:
        """Write the head and the whole body as one piece, if the head alone
        frames them: the common answer, the whole body at once, of the length
        announced, on a kept-alive HTTP/1.1 connection. False if not (then
        nothing is written)."""
        head = self.head
        assert head is not None
        if (
            head.sized is None
            or len(data) != head.length
            or not self.keep_alive
            or self.http_version != "1.1"
            or self.method == "HEAD"
            or self.expect_continue
        ):
            return False
        self.state = BODY
        self.sent = len(data)
        self.remaining = 0
        protocol = self.protocol
        protocol.write(
            b"".join(
                (head.sized, date_line(), protocol.server.server_line, b"\r\n", data)
            )
        )
        return True

    def _write_head(self, data: bytes, more: bool) -> None:
        if not more and self._write_sized(data):
            return
        head = self.head
        assert head is not None
        self.state = BODY

        if head.close or (
            self.expect_continue and not self.continue_sent and not self.body_done
        ):
            # A client still waiting for "100 Continue" may never send the
            # body it announced, so the connection cannot carry another
            # request (RFC 9110 section 10.1.1).
            self.keep_alive = False
        status = self.status
        parts = [head.block, date_line(), self.protocol.server.server_line]
        if self.method == "HEAD" or status < 200 or status in (204, 304):
            self.no_body = True
            if (
                head.length is None
                and data
                and not more
                and status not in (204, 304)
                and status >= 200
            ):
                # The body the application would send to a GET.
                parts.append(b"content-length: %d\r\n" % len(data))
            data = b""
        elif head.length is not None:
            self.remaining = head.length
            parts.append(b"content-length: %d\r\n" % head.length)
        elif not more:
            parts.append(b"content-length: %d\r\n" % len(data))
        elif self.http_version == "1.1":
            self.chunked = True
            parts.append(b"transfer-encoding: chunked\r\n")
        else:
            # HTTP/1.0 has no chunks: the end of the body is the end of the
            # connection (RFC 9112 section 6.3, last rule).
            self.keep_alive = False
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
        elif self.http_version == "1.0":
            parts.append(b"connection: keep-alive\r\n")
        parts.append(b"\r\n")
        if data:
            if self.chunked:
                self.sent += len(data)
                parts.append(b"%x\r\n%s\r\n" % (len(data), data))
            elif self.remaining is not None:
                data = self._count(data)
                parts.append(data)
            else:
                parts.append(data)
                self.sent += len(data)
        self.protocol.write(b"".join(parts))

    def _write_counted(self, data: bytes) -> None:
        if self.remaining is None:
            self.sent += len(data)
            self.protocol.write(data)
            return
        data = self._count(data)
        if data:
            self.protocol.write(data)

    def _count(self, data: bytes) -> bytes:
        """Keep the body within the promised Content-Length."""
        assert self.remaining is not None
        if len(data) > self.remaining:
            logger.error(
                "The application sent more than its Content-Length for %s %s; "
                "the excess is dropped and the connection closed.",
                self.method,
                self.target.decode("latin-1"),
            )
            data = data[: self.remaining]
            self.keep_alive = False
        self.remaining -= len(data)
        self.sent += len(data)
        return data

    def _log(self) -> None:
        accesslog.log_request(self)
