"""Native WebSocket connections: the core connection, speaking RFC 6455.

After the HTTP layer has written the ``101`` response it calls :func:`upgrade`,
which moves the transport to a :class:`WebSocketConnection`: the HTTP parser
and its buffers are dropped, and the connection keeps no read buffer between
frames, which is what brings an idle WebSocket down to about 2 KiB
(``shared/PERFORMANCE.md``). Handlers get the core callbacks; ``on_message``
receives ``str`` for text messages and ``bytes`` for binary ones.

The frame codec (``frames``) is sans-IO; this module is its adapter. The
delivery of a message repeats a few lines of the core connection's
``buffer_updated`` (its inlined dispatch), because that method reads raw bytes
and a WebSocket must decode them first.
"""

from __future__ import annotations

import asyncio
import logging
from threading import get_ident
from typing import Any

from iodine.core.connection import (
    CLOSED,
    CLOSING,
    OPEN_STATE,
    CloseReason,
    Connection,
)
from iodine.core.reactor import Reactor
from iodine.core.settings import KIB
from iodine.http.websocket import frames
from iodine.http.websocket.frames import (
    BINARY,
    BINARY_HEADERS,
    CLOSE,
    PING,
    PONG,
    TEXT,
    TEXT_HEADERS,
    Decoder,
    ProtocolError,
)

logger = logging.getLogger("iodine.ws")

# Ruby iodine's -maxms default. Larger messages close the connection with 1009
# as soon as the frame header that crosses the limit arrives. websockets uses
# 1 MiB, uvicorn 16 MiB; a smaller default bounds what one peer can make the
# server buffer (the Autobahn run raises it to 16 MiB for section 9).
DEFAULT_MAX_MESSAGE = 256 * KIB

# Ruby iodine's -ping default: below the 60 s idle timeout of common proxies
# (nginx's proxy_read_timeout, AWS ALB), so an idle connection survives them.
# A peer silent for another interval after the ping is closed with 1011.
DEFAULT_PING = 40.0

# How long a close handshake we started may wait for the peer's close frame
# before the TCP connection is dropped; websockets waits 10 s too.
CLOSE_TIMEOUT = 10.0

# The close code sent when core closes a connection for these reasons.
_CLOSE_CODES = {
    CloseReason.SHUTDOWN: frames.GOING_AWAY,
    CloseReason.TIMEOUT: frames.INTERNAL_ERROR,
}


class WebSocketConnection(Connection, asyncio.Protocol):
    """A WebSocket connection, handed to the handler's callbacks as ``conn``.

    Core's connections read through ``get_buffer``/``buffer_updated`` into a
    shared buffer; a WebSocket copies each read out of it anyway to decode
    it, and uvloop reads into a fresh ``bytes`` for a plain protocol faster
    than it calls the two buffered methods (``bench ws``: 6 % more echoes).
    Being an ``asyncio.Protocol`` too is what makes uvloop pick
    ``data_received``; asyncio's own loop still takes the buffered path.

    Attributes:
        close_code: The code of the peer's close frame; 1005 if it had none,
            1006 if the connection ended without one; None while open.
        close_reason: The reason of the peer's close frame.
        scope: The request scope (ASGI) or environ (WSGI) of the handshake.
        subprotocol: The subprotocol agreed in the handshake, or None.
        timeout: The ping interval in seconds (0: no pings).
    """

    protocol = "websocket"

    __slots__ = (
        "_decoder",
        "_max_message",
        "_pinged_at",
        "close_code",
        "close_reason",
        "scope",
        "subprotocol",
    )

    def __init__(
        self,
        reactor: Reactor,
        handler: object,
        *,
        max_message: int = DEFAULT_MAX_MESSAGE,
        ping: float = DEFAULT_PING,
        scope: Any = None,
        subprotocol: str | None = None,
        client: bool = False,
    ) -> None:
        super().__init__(reactor, handler, timeout=ping, client=client)
        # A server's decoder exists only while a read leaves a frame or a
        # message unfinished: between messages, the usual state, there is
        # none (200 bytes less per idle connection), and a read holding one
        # small frame is decoded without one (see data_received).
        self._decoder: Decoder | None = (
            Decoder(client=True, max_message=max_message) if client else None
        )
        self._max_message = max_message
        # When the last ping went out; _last_seen is when the peer last spoke.
        self._pinged_at = 0.0
        self.close_code: int | None = None
        self.close_reason = ""
        self.scope = scope
        self.subprotocol = subprotocol

    @property
    def env(self) -> Any:
        """The handshake's request scope or environ (same as ``scope``)."""
        return self.scope

    # ----------------------------------------------------------------- public API

    def write(self, data: bytes | bytearray | memoryview | str) -> bool:
        """Send ``data`` as one message: ``str`` as text, bytes as binary.

        Never blocks; safe from any thread. Returns whether the connection is
        still open (a message written while closing is dropped).
        """
        if isinstance(data, str):
            payload = data.encode()
            size = len(payload)
            if size < 126:
                frame = TEXT_HEADERS[size] + payload
            else:
                frame = frames.encode(TEXT, payload)
        else:
            size = len(data)
            if size < 126:
                frame = BINARY_HEADERS[size] + data
            else:
                frame = frames.encode(BINARY, data)

        # _write_frame, inlined: the hot path of every echo and broadcast.
        if self._state != OPEN_STATE:
            return self._write_early(frame)
        if get_ident() != self._tid:
            return self._write_foreign(frame)
        self._transport.write(frame)  # type: ignore[union-attr]  # open: connected
        if self._write_paused:
            self._check_slow_consumer()
        return self._state == OPEN_STATE

    def ping(self, payload: bytes = b"") -> None:
        """Send a ping now (the peer's pong is not reported). Loop thread."""
        if self._state == OPEN_STATE:
            self._send(self._frame(PING, payload))

    def close(self, code: int = frames.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the close handshake with ``code`` and ``reason``. Any thread.

        Messages written before are sent first; the TCP connection ends when
        the peer answers (or after 10 s). ``on_close`` then gets
        ``CloseReason.LOCAL``.

        Raises:
            ValueError: ``code`` may not be sent, or ``reason`` is over 123
                bytes of UTF-8.
        """
        frames.close_payload(code, reason)  # refuse a bad code in the caller
        if get_ident() != self._tid or self._foreign:
            self._reactor.call_soon_threadsafe(
                self._close, CloseReason.LOCAL, code, reason
            )
        else:
            self._close(CloseReason.LOCAL, code, reason)

    # ------------------------------------------------------ asyncio protocol API

    def data_received(self, data: bytes) -> None:
        # The reactor's clock, updated each second, is precise enough to tell
        # a live peer from a silent one and costs no system call per read.
        self._last_seen = self._reactor.now
        if self._decoder is not None:
            self.feed(data)
            return

        # The hot path of every echo: one small frame, no decoder involved.
        try:
            message = frames.one_small_message(data, self._max_message)
        except ProtocolError as exc:
            self._fail(exc)
            return
        if message is None:
            self.feed(data)
        elif self._state == OPEN_STATE:
            self._deliver(message)

    def buffer_updated(self, nbytes: int) -> None:
        # Only asyncio's own loop reads this way (see the class docstring).
        self.data_received(self._reactor.read_buffer[:nbytes].tobytes())

    def connection_lost(self, exc: Exception | None) -> None:
        if self.close_code is None:
            self.close_code = frames.ABNORMAL_CLOSURE
        super().connection_lost(exc)

    # ------------------------------------------------------------- receiving

    def feed(self, data: bytes) -> None:
        """Decode bytes read from the peer and act on them (loop thread)."""
        decoder = self._decoder
        if decoder is None:
            decoder = self._decoder = Decoder(max_message=self._max_message)
        try:
            events = decoder.receive(data)
        except ProtocolError as exc:
            # What came before the error is still delivered, in order.
            for kind, value in exc.events:
                self._event(kind, value)
            self._fail(exc)
            return
        if decoder.is_idle and type(decoder) is Decoder and not decoder.client:
            self._decoder = None  # a plain server decoder, back between messages
        for kind, value in events:
            if kind <= BINARY:
                if self._state == OPEN_STATE:
                    self._deliver(value)
            else:
                self._control(kind, value)

    def _event(self, kind: int, value: Any) -> None:
        if kind <= BINARY:
            if self._state == OPEN_STATE:
                self._deliver(value)
        else:
            self._control(kind, value)

    def _control(self, kind: int, value: Any) -> None:
        """Answer a ping, note a pong, follow a close (section 5.5)."""
        if kind == PING:
            # After our close frame nothing else may be sent (section 5.5.1).
            if self._state == OPEN_STATE:
                self._send(self._frame(PONG, value))
        elif kind == CLOSE:
            code, reason = value
            self.close_code = code
            self.close_reason = reason
            if self._state == OPEN_STATE:
                # The peer closes first: echo its code, as section 5.5.1
                # suggests, then end the TCP connection.
                self._reason = CloseReason.PEER
                self._state = CLOSING
                echo = None if code == frames.NO_STATUS_RECEIVED else code
                self._send(self._frame(CLOSE, frames.close_payload(echo)))
            if self._transport is not None:
                self._transport.close()
        # A pong needs nothing: any read already counts as a sign of life.

    def _fail(self, exc: ProtocolError) -> None:
        """Fail the connection (section 7.1.7): close frame, then TCP close."""
        logger.debug("Closing WebSocket %s with %d: %s.", self.peer, exc.code, exc)
        if self.error is None:
            self.error = exc
        self._terminate(CloseReason.ERROR, exc.code, "")

    def _close_failed(self) -> str:
        """A callback raised: close with 1011 instead of aborting.

        Core drops the TCP connection, which the peer can only report as
        1006, as if the network had failed. 1011 (Internal Error in the IANA
        close code registry, RFC 6455 section 11.7) says the server gave up;
        the ASGI session sends it too when its application raises, and so
        does a websockets server when its handler does. The peer's echo is
        not awaited, as for any failed connection (section 7.1.7).
        """
        if self._state != OPEN_STATE:
            return super()._close_failed()  # no close frame may be sent any more
        self._terminate(CloseReason.ERROR, frames.INTERNAL_ERROR, "")
        return "closing the WebSocket with 1011"

    # --------------------------------------------------------------- sending

    def _frame(self, opcode: int, payload: bytes) -> bytes:
        """One complete frame as this side sends it (a server never masks)."""
        return frames.encode(opcode, payload)

    def _write_frame(self, frame: bytes) -> bool:
        if self._state != OPEN_STATE:
            return self._write_early(frame)
        if get_ident() != self._tid:
            return self._write_foreign(frame)
        self._transport.write(frame)  # type: ignore[union-attr]  # open: connected
        if self._write_paused:
            self._check_slow_consumer()
        return self._state == OPEN_STATE

    def _write_foreign(self, frame: bytes) -> bool:
        # Another thread: the loop sends it, after what it queued before.
        self._count_foreign(len(frame))
        self._reactor.call_soon_threadsafe(self._write_from_thread, frame)
        return True

    def _send(self, data: bytes | bytearray | memoryview) -> None:
        # Unlike core, writing does not touch _last_seen: here it means "the
        # peer last spoke", which is what liveness is about.
        transport = self._transport
        assert transport is not None
        transport.write(data)
        if self._write_paused:
            self._check_slow_consumer()

    # --------------------------------------------------------------- closing

    def _close(
        self, reason: CloseReason, code: int | None = None, text: str = ""
    ) -> None:
        """Start the close handshake; core calls this for close, shutdown
        (code 1001) and idle timeouts."""
        if self._state != OPEN_STATE:
            super()._close(reason)  # not connected yet, or already closing
            return
        if code is None:
            code = _CLOSE_CODES.get(reason, frames.NORMAL_CLOSURE)
        self._reason = reason
        self._state = CLOSING
        self._send(self._frame(CLOSE, frames.close_payload(code, text)))
        # The peer's close frame ends the connection (see _control); a peer
        # that never sends one is dropped after CLOSE_TIMEOUT.
        loop: asyncio.AbstractEventLoop = self._loop  # type: ignore[assignment]  # open: has a loop
        loop.call_later(CLOSE_TIMEOUT, self._abort, reason)

    def _terminate(self, reason: CloseReason, code: int, text: str) -> None:
        """Send a close frame and end the TCP connection without waiting."""
        if self._state == OPEN_STATE:
            self._reason = reason
            self._state = CLOSING
            self._send(self._frame(CLOSE, frames.close_payload(code, text)))
        if self._state != CLOSED and self._transport is not None:
            self._transport.close()

    def idle_for(self, now: float) -> bool:
        """Ping a peer silent for ``timeout`` s; close it after another one."""
        timeout = self._timeout
        if self._state != OPEN_STATE or not timeout:
            return False
        if now - self._last_seen < timeout:
            return False
        if self._pinged_at <= self._last_seen:
            self._pinged_at = now
            self._send(self._frame(PING, b""))
            return False
        if now - self._pinged_at < timeout:
            return False
        logger.debug(
            "Closing WebSocket %s: silent for %.0f s after a ping.", self.peer, timeout
        )
        self._terminate(CloseReason.TIMEOUT, frames.INTERNAL_ERROR, "ping timeout")
        return True


def upgrade(
    reactor: Reactor,
    transport: Any,
    handler: object,
    scope: Any = None,
    leftover: bytes = b"",
    *,
    max_message: int = DEFAULT_MAX_MESSAGE,
    ping: float = DEFAULT_PING,
    subprotocol: str | None = None,
) -> WebSocketConnection:
    """Turn a connection whose ``101`` is written into a WebSocket.

    Call on the loop thread, after writing the head from
    ``handshake.accept_response``, with the transport not closing.

    Args:
        reactor: The reactor the connection belongs to.
        transport: The connection's transport; its protocol becomes the
            returned connection (``set_protocol``).
        handler: The WebSocket handler (object, class or factory).
        scope: The request scope or environ, kept as ``conn.scope``.
        leftover: Bytes read after the handshake request (frames the client
            sent right away); they are decoded as if just read.
        max_message: Largest message in bytes (1009 above it).
        ping: Seconds of peer silence before a ping (0 for none).
        subprotocol: The subprotocol named in the ``101``.

    Returns:
        The connection, already open (``on_open`` has been posted).
    """
    conn = WebSocketConnection(
        reactor,
        handler,
        max_message=max_message,
        ping=ping,
        scope=scope,
        subprotocol=subprotocol,
    )
    attach(conn, transport, leftover)
    return conn


def attach(conn: WebSocketConnection, transport: Any, leftover: bytes = b"") -> None:
    """Make ``conn`` (not yet connected) the protocol of ``transport``.

    The part of :func:`upgrade` that other kinds of WebSocket connection
    (ASGI's, permessage-deflate's) share: open it, decode ``leftover``, and
    make sure the transport reads.
    """
    transport.set_protocol(conn)
    conn.connection_made(transport)
    if leftover and conn._state in (OPEN_STATE, CLOSING):
        conn.feed(bytes(leftover))
    # The HTTP layer may have paused reading (backpressure, a request body
    # it did not want); a WebSocket always reads.
    if not transport.is_closing() and not transport.is_reading():
        transport.resume_reading()
