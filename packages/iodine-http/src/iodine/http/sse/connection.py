"""Native SSE connections: a core connection that writes an event stream.

After the HTTP layer has written the head from ``events.response_head``, it
calls :func:`upgrade`; the handler then gets the core callbacks on a
half-duplex connection: ``conn.write(data)`` sends a ``message`` event,
``conn.write_sse(...)`` a full one. Nothing the client sends is delivered
(EventSource sends nothing after its request). A comment line goes out on a
stream idle for the ping interval, and shutdown ends the stream by closing
the connection once everything written is sent, which the browser treats as
a cue to reconnect.
"""

from __future__ import annotations

import logging
from typing import Any

from iodine.core.connection import CLOSING, OPEN_STATE, Connection
from iodine.core.reactor import Reactor
from iodine.http.sse import events

logger = logging.getLogger("iodine.http")

# Below the 60 s idle timeout of common proxies, like WebSocket pings (the
# same -ping setting as WebSockets in Ruby iodine).
DEFAULT_PING = 40.0


class SSEConnection(Connection):
    """An event stream, handed to the handler's callbacks as ``conn``.

    Attributes:
        scope: The request scope (ASGI) or environ (WSGI).
        last_event_id: The request's ``Last-Event-ID`` header, or None.
        timeout: Seconds without a write before a ``: ping`` comment.
    """

    protocol = "sse"

    __slots__ = ("last_event_id", "scope")

    def __init__(
        self,
        reactor: Reactor,
        handler: object,
        *,
        ping: float = DEFAULT_PING,
        scope: Any = None,
        last_event_id: str | None = None,
    ) -> None:
        super().__init__(reactor, handler, timeout=ping)
        self.scope = scope
        self.last_event_id = last_event_id

    @property
    def env(self) -> Any:
        """The request's scope or environ (same as ``scope``)."""
        return self.scope

    def write(self, data: bytes | bytearray | memoryview | str) -> bool:
        """Send ``data`` as a ``message`` event, one ``data:`` line per line.

        Safe from any thread. Returns whether the stream is still open.
        """
        if not isinstance(data, (bytes, str)):
            data = bytes(data)
        return super().write(events.format_data(data))

    def write_sse(
        self,
        data: bytes | str,
        *,
        id: str | None = None,  # the standard's field name
        event: str | None = None,
        retry: int | None = None,
    ) -> bool:
        """Send a complete event (see :func:`events.format_event`).

        Raises:
            ValueError: ``id`` or ``event`` holds a line break.
        """
        return super().write(events.format_event(data, id=id, event=event, retry=retry))

    def buffer_updated(self, nbytes: int) -> None:
        # Half-duplex: a stray byte from the client is not an event, and
        # reading it must not count as activity on the stream.
        return

    def idle_for(self, now: float) -> bool:
        """Send a ``: ping`` comment after ``timeout`` s without a write."""
        if self._state != OPEN_STATE or not self._timeout:
            return False
        if now - self._last_seen < self._timeout:
            return False
        self._send(events.PING_COMMENT)
        return True


def upgrade(
    reactor: Reactor,
    transport: Any,
    handler: object,
    scope: Any = None,
    leftover: bytes = b"",
    *,
    ping: float = DEFAULT_PING,
    last_event_id: str | None = None,
) -> SSEConnection:
    """Turn a connection whose ``200 text/event-stream`` head is written into
    an event stream. Call on the loop thread.

    Args:
        reactor: The reactor the connection belongs to.
        transport: The connection's transport; its protocol becomes the
            returned connection.
        handler: The stream's handler (object, class or factory).
        scope: The request scope or environ, kept as ``conn.scope``.
        leftover: Bytes read after the request; ignored (see above).
        ping: Seconds without a write before a ``: ping`` comment (0: none).
        last_event_id: The request's ``Last-Event-ID`` (see
            :func:`events.last_event_id`).

    Returns:
        The connection, already open (``on_open`` has been posted).
    """
    del leftover  # a pipelined request after an event stream is never answered
    conn = SSEConnection(
        reactor, handler, ping=ping, scope=scope, last_event_id=last_event_id
    )
    transport.set_protocol(conn)
    conn.connection_made(transport)
    # Keep reading, only to notice when the client goes away.
    alive = conn._state in (OPEN_STATE, CLOSING) and not transport.is_closing()
    if alive and not transport.is_reading():
        transport.resume_reading()
    return conn
