"""What the Autobahn runs put under test (see ``autobahn_server``).

Two ASGI applications for the server side, both served by the real HTTP
server:

- :func:`native_echo` hands each WebSocket to the native :class:`Echo`
  handler with ``iodine.upgrade``, as ``examples/realtime.py`` does;
- :func:`asgi_echo` answers through the standard ``websocket`` scope.

And for the client side, :class:`FuzzingClient`: iodine's WebSocket client
driving kosoku's fuzzingserver the way Autobahn's reference clients do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import iodine

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


class Echo:
    """The native handler: each message goes back as it came."""

    def on_message(self, conn: Any, data: str | bytes) -> None:
        conn.write(data)


ECHO = Echo()


async def lifespan(receive: Receive, send: Send) -> None:
    """Accept the lifespan events; there is nothing to start or stop."""
    while True:
        event = await receive()
        if event["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif event["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def not_found(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"WebSockets only\n"})


async def native_echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Hand every WebSocket to :class:`Echo`; nothing else is served."""
    if scope["type"] == "websocket":
        await send({"type": "iodine.upgrade", "handler": ECHO})
    elif scope["type"] == "lifespan":
        await lifespan(receive, send)
    else:
        await not_found(send)


async def asgi_echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Echo every message through ``websocket.receive`` and ``websocket.send``."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["type"] != "websocket":
        await not_found(send)
        return

    # The handshake: websocket.connect comes first, whatever the client sent.
    await receive()
    await send({"type": "websocket.accept"})

    # The messages, until the peer closes or fails the connection.
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            return
        text = event.get("text")
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": event["bytes"]})


class FuzzingClient:
    """Run every case kosoku's fuzzingserver offers, one connection at a time.

    The protocol of Autobahn's reference clients (its ``wstest -m echoclient``
    and the client examples of autobahn-python): ``/getCaseCount`` sends the
    number of cases as one text message; ``/runCase?case=N&agent=A`` plays
    case N, and the client echoes whatever it receives until the server
    closes; ``/updateReports?agent=A`` ends the run. Each connection starts
    when the one before has closed. Loop thread only.

    Args:
        base: The fuzzingserver's ``ws://host:port``.
        agent: The name the reports carry.
        max_message: The client's message limit (section 9 sends 16 MiB).
        done: Called once ``updateReports`` has closed, or a step failed.
    """

    def __init__(
        self,
        base: str,
        agent: str,
        max_message: int,
        done: Callable[[], None],
        compression: bool = False,
    ) -> None:
        self.base = base
        self.agent = agent
        self.max_message = max_message
        self.done = done
        self.compression = compression
        self.count: int | None = None
        # The case under way (1-based), and how many ran to their close.
        self.case = 0
        self.ran = 0
        # Whether updateReports ran: the fuzzingserver then has every result.
        self.finished = False
        # Cases whose connection could not be opened, with the cause.
        self.errors: list[str] = []

    def start(self) -> None:
        self._open("/getCaseCount", _Counter(self))

    def next_case(self) -> None:
        """Open the next case, or the report update after the last one."""
        if self.count is None:
            self.errors.append("getCaseCount sent no count")
            self.done()
            return
        self.case += 1
        if self.case <= self.count:
            path = f"/runCase?case={self.case}&agent={self.agent}"
            self._open(path, _CaseEcho(self))
        else:
            self._open(f"/updateReports?agent={self.agent}", _Finish(self))

    def failed(self, conn: Any) -> None:
        """A connection could not be opened: note it and carry on."""
        self.errors.append(f"{conn.url}: {conn.error!r}")

    def _open(self, path: str, handler: object) -> None:
        iodine.connect(
            url=self.base + path,
            handler=handler,
            max_message=self.max_message,
            # kosoku's cases last seconds; a ping would add events they
            # do not expect.
            ping=0,
            compression=self.compression,
        )


class _Counter:
    """``/getCaseCount``: one text message, the number of cases."""

    def __init__(self, run: FuzzingClient) -> None:
        self.run = run

    def on_message(self, conn: Any, data: str | bytes) -> None:
        self.run.count = int(data)

    def on_close(self, conn: Any, reason: iodine.CloseReason) -> None:
        if reason == iodine.CloseReason.CONNECT_FAILED:
            self.run.failed(conn)
        self.run.next_case()


class _CaseEcho(Echo):
    """``/runCase``: echo until the server ends the case, then go on."""

    def __init__(self, run: FuzzingClient) -> None:
        self.run = run

    def on_close(self, conn: Any, reason: iodine.CloseReason) -> None:
        if reason == iodine.CloseReason.CONNECT_FAILED:
            self.run.failed(conn)
        else:
            self.run.ran += 1
        self.run.next_case()


class _Finish:
    """``/updateReports``: the server writes its reports and closes."""

    def __init__(self, run: FuzzingClient) -> None:
        self.run = run

    def on_close(self, conn: Any, reason: iodine.CloseReason) -> None:
        if reason == iodine.CloseReason.CONNECT_FAILED:
            self.run.failed(conn)
        else:
            self.run.finished = True
        self.run.done()
