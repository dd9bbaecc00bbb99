"""The ASGI ``websocket`` scope (ASGI spec 2.4, with the
``websocket.http.response`` extension and iodine's ``iodine.upgrade``).

A WebSocket handshake is one request on an HTTP connection, so until the
application accepts it lives in a :class:`WebSocketExchange`: the
handshake is checked first (400 or 426 without running the application),
then the application gets ``websocket.connect`` and may accept, close (403),
answer with an HTTP response of its own, or hand the connection to a native
handler. Once it accepts, the HTTP protocol lets go of the transport and an
:class:`AsgiWebSocketConnection` takes it: the frame codec of native
WebSockets, delivering straight to the application's :class:`AsgiWebSocket`
session instead of through handler callbacks.

``receive`` and ``send`` are plain functions returning futures (the
``shared/PERFORMANCE.md`` measurement: +13 % for an ASGI echo over
coroutines). ``send`` returns a shared, finished future unless the
transport's buffer is full; ``receive`` returns a finished one when a message
is waiting. An idle connection holds the session, its connection, the
application's task and one pending future: no HTTP parser, and not the
exchange of the handshake either (at the accept, the task's done callback
moves from it to the session).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from iodine.core.connection import OPEN_STATE, CloseReason
from iodine.http import upgrade
from iodine.http.asgi import ClientDisconnected, request_scope
from iodine.http.exchange import BODY, DONE, STARTED, WAITING, Exchange
from iodine.http.headers import simple_response
from iodine.http.websocket import frames
from iodine.http.websocket.connection import WebSocketConnection
from iodine.http.websocket.frames import ProtocolError

if TYPE_CHECKING:
    from iodine.http.protocol import HttpProtocol

logger = logging.getLogger("iodine.ws")

# Messages held for an application that is not receiving them; past this,
# reading from the peer pauses until it catches up (websockets' max_queue is
# 16 messages, uvicorn's 32). Reading resumes when a quarter are left.
MAX_QUEUED = 32
_RESUME_AT = MAX_QUEUED // 4

# Why reading is paused, as core's bits: 1 and 2 are core's own.
_BACKLOG = 4

# Session states.
CONNECTING = 0  # before the application accepts or refuses
OPEN = 1  # accepted: messages flow
CLOSED = 2  # disconnected, refused, or handed to a native handler

_CONNECT = {"type": "websocket.connect"}


def _disconnect(code: int, reason: str = "") -> dict[str, Any]:
    return {"type": "websocket.disconnect", "code": code, "reason": reason}


def websocket_scope(exchange: Exchange) -> dict[str, Any]:
    """The ``websocket`` scope of a handshake request."""
    scope = request_scope(exchange)
    del scope["method"]  # the template is made for http scopes
    scope["type"] = "websocket"
    scope["scheme"] = "wss" if scope["scheme"] == "https" else "ws"
    scope["subprotocols"] = (
        list(exchange.handshake.subprotocols) if exchange.handshake else []
    )
    scope["extensions"] = _EXTENSIONS
    return scope


# One dict for every WebSocket scope, as the HTTP scopes of a connection
# share their template's: a scope lives as long as its connection, and
# 10,000 idle WebSockets would otherwise hold 10,000 copies (3 dicts each).
_EXTENSIONS: dict[str, Any] = {"websocket.http.response": {}, "iodine.upgrade": {}}


class AsgiWebSocket:
    """One ASGI WebSocket: the ``receive`` and ``send`` the application holds.

    It is also the handler of its connection once accepted (``on_drained``,
    ``on_close``); messages reach it from the connection directly.
    """

    __slots__ = (
        "_conn",
        "_done",
        "_drain",
        "_exchange",
        "_loop",
        "_queue",
        "_tasks",
        "_waiter",
        "state",
    )

    def __init__(self, exchange: WebSocketExchange) -> None:
        protocol = exchange.protocol
        self._exchange: WebSocketExchange | None = exchange
        self._conn: AsgiWebSocketConnection | None = None
        self._loop = protocol.loop
        self._done = protocol.done
        self._tasks = protocol.server.tasks
        # Messages (or the disconnect) the application has not received yet;
        # None while there are none, which is nearly always.
        self._queue: deque[dict[str, Any]] | None = deque([_CONNECT])
        self._waiter: asyncio.Future[dict[str, Any]] | None = None
        self._drain: asyncio.Future[None] | None = None
        self.state = CONNECTING

    # ---------------------------------------------------------- receive

    def receive(self) -> asyncio.Future[dict[str, Any]]:
        """The next ``websocket.*`` event for the application."""
        future: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        queue = self._queue
        if queue:
            future.set_result(queue.popleft())
            if not queue:
                self._queue = None
            conn = self._conn
            if (
                conn is not None
                and conn._paused_by & _BACKLOG
                and (len(queue) <= _RESUME_AT)
            ):
                conn._resume_reading(_BACKLOG)
        elif self.state == CLOSED:
            future.set_result(_disconnect(frames.ABNORMAL_CLOSURE))
        else:
            self._waiter = future
        return future

    def _push(self, event: dict[str, Any]) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(event)
                return
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        queue.append(event)
        conn = self._conn
        if len(queue) >= MAX_QUEUED and conn is not None:
            conn._pause_reading(_BACKLOG)

    def message(self, data: str | bytes) -> None:
        """A whole message from the peer (the connection calls this)."""
        if type(data) is str:
            self._push({"type": "websocket.receive", "text": data})
        else:
            self._push({"type": "websocket.receive", "bytes": data})

    # ------------------------------------------------------------- send

    def send(self, message: dict[str, Any]) -> asyncio.Future[None]:
        """Take one ``websocket.*`` message from the application."""
        kind = message["type"]
        conn = self._conn
        if kind == "websocket.send" and conn is not None:
            text = message.get("text")
            if text is not None:
                sent = conn.write(text)
            else:
                data = message.get("bytes")
                if data is None:
                    raise TypeError("websocket.send needs 'bytes' or 'text'")
                sent = conn.write(data)
            if not sent:
                raise ClientDisconnected("the WebSocket is closed")
            if conn._write_paused:
                return self._drained()
            return self._done
        if kind == "websocket.close" and conn is not None:
            if conn.is_open:
                conn.close(message.get("code") or 1000, message.get("reason") or "")
            return self._done
        exchange = self._exchange
        if exchange is not None and self.state == CONNECTING:
            exchange.answer(message, self)
            return self._done
        if self.state == CLOSED or (conn is not None and not conn.is_open):
            raise ClientDisconnected("the WebSocket is closed")
        raise RuntimeError(f"unexpected ASGI message {kind!r} at this point")

    def _drained(self) -> asyncio.Future[None]:
        drain = self._drain
        if drain is None or drain.done():
            drain = self._drain = self._loop.create_future()
        return drain

    # -------------------------------------------- from the connection

    def opened(self, conn: AsgiWebSocketConnection) -> None:
        self._conn = conn
        self._exchange = None
        self.state = OPEN

    def on_drained(self, conn: Any) -> None:
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    def on_close(self, conn: Any, reason: CloseReason) -> None:
        self.state = CLOSED
        code = conn.close_code or frames.NO_STATUS_RECEIVED
        if code == frames.ABNORMAL_CLOSURE and isinstance(conn.error, ProtocolError):
            # The server failed the connection (1002, 1007, 1009) and did not
            # wait for the peer's echo: the application learns why from the
            # code that was sent rather than from a bare 1006.
            code = conn.error.code
        self._push(_disconnect(code, conn.close_reason))
        self.on_drained(conn)

    def app_done(self, task: asyncio.Task[Any]) -> None:
        """The application of an accepted WebSocket ended: close it with
        1000, or 1011 if it raised (returning ends the conversation, as in
        uvicorn)."""
        self._tasks.discard(task)
        error = asyncio.CancelledError() if task.cancelled() else task.exception()
        conn = self._conn
        assert conn is not None
        if error is None:
            if conn.is_open:
                conn.close(frames.NORMAL_CLOSURE)
            return
        path = conn.scope["path"] if conn.scope else "?"
        if conn.is_open:
            logger.error(
                "Exception in the ASGI application for WebSocket %s; "
                "closing it with 1011.",
                path,
                exc_info=error,
            )
            conn.close(frames.INTERNAL_ERROR)
        elif not isinstance(error, OSError):
            logger.error(
                "Exception in the ASGI application for WebSocket %s:",
                path,
                exc_info=error,
            )

    def lost(self) -> None:
        """The client went away before the handshake was answered."""
        if self.state == CONNECTING:
            self.state = CLOSED
            self._exchange = None
            self._push(_disconnect(frames.ABNORMAL_CLOSURE))

    def refused(self) -> None:
        """The handshake was answered with HTTP: no WebSocket follows."""
        self.state = CLOSED
        self._exchange = None
        self._push(_disconnect(frames.ABNORMAL_CLOSURE))


class AsgiWebSocketConnection(WebSocketConnection):
    """The WebSocket connection of an ASGI application.

    Messages go straight to the session, skipping core's per-event dispatch:
    the session only resolves a future or queues, so it can run inline and
    in any order with the other events. Its own queue bounds a backlog.
    """

    __slots__ = ("_session",)

    def __init__(self, reactor: Any, handler: AsgiWebSocket, **options: Any) -> None:
        super().__init__(reactor, handler, **options)
        self._session = handler
        # on_drained and on_close resolve futures: they must run on the loop
        # whatever settings.callbacks says.
        self._inline = True

    def _deliver(self, message: Any) -> None:
        if self._state == OPEN_STATE:
            self._session.message(message)


class WebSocketExchange(Exchange):
    """A WebSocket handshake served by an ASGI application (see the module
    docstring); an HTTP exchange until the application accepts."""

    session: AsgiWebSocket | None = None
    scope: dict[str, Any] | None = None
    _task: asyncio.Task[Any] | None = None

    def run(self) -> None:
        protocol = self.protocol
        server = protocol.server
        self.handshake = upgrade.check_websocket(self)
        if self.handshake is None:
            return
        scope = self.scope = websocket_scope(self)
        session = self.session = AsgiWebSocket(self)
        try:
            task = server.reactor.start_task(
                server.app(scope, session.receive, session.send)
            )
        except Exception:
            logger.exception(
                "The ASGI application failed to start for WebSocket %s.",
                self.target.decode("latin-1"),
            )
            self.fail()
            return
        if task.done():
            self._app_done(task)
            return
        server.tasks.add(task)
        if session._conn is not None:
            # Accepted in its first step (eager tasks): the exchange is done.
            task.add_done_callback(session.app_done)
        else:
            self._task = task
            task.add_done_callback(self._app_done)

    # ------------------------------------------------ before the accept

    def answer(self, message: dict[str, Any], session: AsgiWebSocket) -> None:
        """Act on what the application sends before it has accepted."""
        kind = message["type"]
        state = self.state
        if kind == "websocket.accept" and state == WAITING:
            self._accept(message, session)
        elif kind == "websocket.close" and state == WAITING:
            # The spec's answer to a refusal before the accept.
            self.answer_raw(simple_response(403, self.protocol.server.server_line), 403)
            session.refused()
        elif kind == "iodine.upgrade" and state == WAITING:
            upgrade.switch_for_message(self, message, self.scope)
            session.refused()
        elif kind == "websocket.http.response.start" and state == WAITING:
            self.keep_alive = False
            self.start_response(message["status"], message.get("headers", ()))
        elif kind == "websocket.http.response.body" and state in (STARTED, BODY):
            self.send_body(message.get("body", b""), message.get("more_body", False))
            if self.state == DONE:
                session.refused()
        else:
            raise RuntimeError(
                f"unexpected ASGI message {kind!r} before the WebSocket is accepted"
            )

    def _accept(self, message: dict[str, Any], session: AsgiWebSocket) -> None:
        headers = list(message.get("headers") or ())
        compressing: type[AsgiWebSocketConnection] = AsgiWebSocketConnection
        if self.protocol.server.config.websocket_compression:
            # Looked up only then: the deflate module loads wsproto.
            compressing = upgrade.deflate_module().AsgiDeflateConnection
        conn = upgrade.switch(
            self,
            session,
            headers=headers,
            subprotocol=message.get("subprotocol"),
            scope=self.scope,
            websocket_classes=(AsgiWebSocketConnection, compressing),
        )
        assert isinstance(conn, AsgiWebSocketConnection)
        session.opened(conn)
        # From here the session sees the application out; dropping the
        # task's hold on this exchange frees it, and the HTTP protocol with it.
        task = self._task
        if task is not None:
            self._task = None
            task.remove_done_callback(self._app_done)
            task.add_done_callback(session.app_done)

    # ------------------------------------- what the HTTP protocol calls

    def feed_body(self, data: bytes) -> None:
        return  # a handshake has no body worth keeping

    def end_body(self) -> None:
        return

    def lost(self) -> None:
        session = self.session
        if session is not None:
            session.lost()

    # ---------------------------------------------------- the app's end

    def _app_done(self, task: asyncio.Task[Any]) -> None:
        protocol: HttpProtocol = self.protocol
        protocol.server.tasks.discard(task)
        error = asyncio.CancelledError() if task.cancelled() else task.exception()
        session = self.session
        target = self.target.decode("latin-1")
        if session is not None and session._conn is not None:
            session.app_done(task)  # accepted, and done in its first step
            return
        if self.state == DONE:
            if error is not None and not isinstance(error, OSError):
                logger.error(
                    "Exception in the ASGI application for WebSocket %s:",
                    target,
                    exc_info=error,
                )
            return
        gone = session is not None and session.state == CLOSED
        if isinstance(error, OSError) and gone:
            # The client left before the answer; send told the application.
            logger.debug("Client gone before WebSocket %s was answered.", target)
        elif error is not None:
            logger.error(
                "Exception in the ASGI application for WebSocket %s:",
                target,
                exc_info=error,
            )
        elif session is not None and session.state == CONNECTING:
            logger.error(
                "The ASGI application returned without accepting or refusing "
                "the WebSocket %s.",
                target,
            )
        # Nothing sent yet: 500; a denial response under way is cut off.
        self.keep_alive = False
        self.fail()
        if session is not None:
            session.refused()
