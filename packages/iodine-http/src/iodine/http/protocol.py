"""The HTTP/1.1 connection: httptools parsing, pipelining, limits, keep-alive.

One :class:`HttpProtocol` per connection. It parses with httptools (llhttp) and
hands each request to an :class:`~iodine.http.exchange.Exchange` of the
listener's interface. The parser and the transport are fused here rather than
kept apart sans-IO: the callbacks below are the hot path, and an extra layer of
events between them and the exchange would cost a call and an object per step.

Pipelining: every request in a read is parsed before any application runs, so
the bodies that came with it are already there when the application asks.
Exchanges then run one after another (responses must go out in order), each
starting as soon as the one before it has finished its response, within the
same loop iteration when the application does not suspend. While a read is
being handled, writes are collected ("corked") and go out as one
``transport.write``: one system call for a whole batch of pipelined responses.

Timeouts are checked once a second by the reactor (``idle_for``) instead of a
timer per request: the head of a request must arrive within
``header_timeout``, and a connection with nothing to do is closed after
``keep_alive`` seconds.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

import httptools

from iodine.core.connection import CloseReason
from iodine.http import upgrade
from iodine.http.headers import simple_response

if TYPE_CHECKING:
    from iodine.http.exchange import Exchange
    from iodine.http.service import HttpServer

logger = logging.getLogger("iodine.http")

# Why reading is paused, as bits: the transport cannot take more writes, the
# application is not reading the body it was sent, too many pipelined requests
# are waiting for their turn, or the connection has no use for more input.
_WRITE, _BODY, _QUEUE, _DONE = 1, 2, 4, 8

# Pipelined requests parsed ahead of the one being answered. 16-deep pipelines
# are what benchmarks and HTTP/1.1 proxies send; past 64 the client is not
# reading its answers and reading from it stops until they drain.
MAX_QUEUED = 64
_RESUME_AT = MAX_QUEUED // 2

# Bytes of request body held for an application that is not reading it (the
# same 64 KiB as asyncio's write high-water mark); over it, reading pauses.
BODY_HIGH_WATER = 64 * 1024

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

# Methods as text, looked up instead of decoded per request.
_METHODS: dict[bytes, str] = {}

# What the server itself reads from a request's headers (0: nothing).
_HOST, _CONTENT_LENGTH, _EXPECT, _FORWARDED, _UPGRADE, _ACCEPT, _CONNECTION = range(
    1, 8
)
_ROLES = {
    b"host": _HOST,
    b"content-length": _CONTENT_LENGTH,
    b"expect": _EXPECT,
    b"x-forwarded-for": _FORWARDED,
    b"x-forwarded-proto": _FORWARDED,
    b"forwarded": _FORWARDED,
    b"upgrade": _UPGRADE,
    b"accept": _ACCEPT,
    # llhttp reads both for keep-alive; see on_headers_complete.
    b"connection": _CONNECTION,
    b"proxy-connection": _CONNECTION,
}

# What the server noticed in a request's head that most requests do not
# have, as bits of one integer that on_url resets with a single store:
# "Expect: 100-continue", a proxy header, an Upgrade header, an Accept
# naming text/event-stream, a Connection header. Bit operations are not
# specialized by CPython, so the common request, with none of them, never
# does one.
_SEEN_EXPECT, _SEEN_FORWARDED, _SEEN_UPGRADE, _SEEN_EVENTS, _SEEN_CONNECTION = (
    1,
    2,
    4,
    8,
    16,
)

# Header names as received -> (the lowercased name ASGI and WSGI want, its
# role). One lookup per header instead of lowering it and comparing it with
# each name above (a browser's 14 headers: 1.5 us less per request), and the
# names are shared: a scope kept for a connection's lifetime (a WebSocket's)
# holds no copy of them. Bounded, since names are the client's choice; past
# the bound, a name is worked out each time.
_NAMES: dict[bytes, tuple[bytes, int]] = {}
_MAX_NAMES = 512


def _learn_name(name: bytes) -> tuple[bytes, int]:
    lowered = name.lower()
    known = (lowered, _ROLES.get(lowered, 0))
    if len(_NAMES) < _MAX_NAMES:
        _NAMES[name] = known
    return known


class _LimitHit(Exception):
    """Raised from a parser callback to stop parsing; carries the status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class HttpProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection; see the module docstring for the design."""

    __slots__ = (
        "__weakref__",
        "_active",
        "_body_owner",
        "_config",
        "_context",
        "_corked",
        "_counted",
        "_driving",
        "_error_status",
        "_head_bytes",
        "_head_reads",
        "_head_since",
        "_headers",
        "_host_count",
        "_idle_since",
        "_in_head",
        "_leftover",
        "_out",
        "_parser",
        "_paused",
        "_queue",
        "_seen",
        "_small_head",
        "_upgrade_to",
        "_url",
        "_waiters",
        "client",
        "closing",
        "done",
        "is_closed",
        "loop",
        "proxy_trusted",
        "scheme",
        "server",
        "server_address",
        "template",
        "transport",
        "write_paused",
    )

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        config = self._config = server.config
        # No line of a head this small can be too long, nor the head itself:
        # on_header checks those two limits only past it.
        self._small_head = min(config.max_header_line, config.max_header_bytes)
        self.loop = server.reactor.loop
        self.transport: asyncio.Transport | None = None
        self._parser: Any = httptools.HttpRequestParser(self)
        self.client: tuple[str, int] | None = None
        self.server_address: tuple[str, int] | None = None
        self.scheme = "http"
        self.proxy_trusted = False
        self.template: dict[str, Any] = {}
        # A finished future, shared: awaiting it never suspends.
        self.done = server.done_future
        self._context = contextvars.copy_context()
        # The exchange whose response is being made, and those parsed after it.
        self._active: Exchange | None = None
        self._queue: deque[Exchange] = deque()
        # The exchange whose body the parser is reading (may be queued).
        self._body_owner: Exchange | None = None
        self._driving = False
        self._corked = False
        self._out: list[bytes] = []
        self._paused = 0
        self.write_paused = False
        self._waiters: list[asyncio.Future[None]] = []
        self.closing = False
        self.is_closed = False
        self._counted = False
        self._error_status = 0
        # The request head being parsed.
        self._in_head = False
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._head_reads = -1
        self._host_count = 0
        self._seen = 0
        # The Upgrade header's value (read only when _seen says there is
        # one), and the bytes that followed the head of a request the parser
        # saw switch protocols.
        self._upgrade_to = b""
        self._leftover = b""
        now = server.reactor.now
        # The first request's head is due header_timeout after the connect.
        self._head_since = now
        self._idle_since = -1.0

    # ------------------------------------------------ asyncio protocol API

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing.
        own: asyncio.Transport = transport  # type: ignore[assignment]
        self.transport = own
        server = self.server
        reactor = server.reactor
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.client = (peer[0], peer[1])
        local = transport.get_extra_info("sockname")
        if isinstance(local, tuple):
            self.server_address = (local[0], local[1])
        reactor.add_connection(self)
        reactor.watch_timeout(self, True)

        # Over capacity: say so and close, rather than take a connection the
        # process cannot serve (or leave none for the application's files).
        if not server.admit(transport):
            own.write(simple_response(503, server.server_line))
            self.closing = True
            own.close()
            return
        self._counted = True
        self.proxy_trusted = (
            self.client[0] if self.client else peer
        ) in server.config.forwarded_allow_ips
        self.template = server.connection_template(self)

    def data_received(self, data: bytes) -> None:
        if self._parser is None or (self.closing and self._body_owner is None):
            return
        if self._idle_since >= 0.0:
            # The keep-alive wait is over: the next head is now due.
            self._head_since = self.server.reactor.now
            self._idle_since = -1.0
        self._corked = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            # httptools wraps what a callback raised; a limit is one of ours.
            cause = exc.__context__
            if isinstance(cause, _LimitHit):
                self._bad_request(cause.status)
            else:
                logger.exception("HTTP parser callback failed; closing.")
                self._bad_request(500)
        except httptools.HttpParserUpgrade as upgrade:
            self._upgrade(data[upgrade.args[0] :] if upgrade.args else b"")
        except httptools.HttpParserError as exc:
            self._parse_error(exc)
        else:
            if self._in_head:
                self._check_partial_head(len(data))
        if self._active is None and not self._driving:
            self._run_queued()
        self._uncork()

    def eof_received(self) -> bool:
        # A client that shuts down its sending side is treated as gone, as
        # browsers and proxies mean it: returning False closes the transport,
        # and connection_lost tells a running application (http.disconnect).
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.is_closed:
            return
        self.is_closed = True
        self.closing = True
        server = self.server
        server.reactor.discard_connection(self)
        if self._counted:
            server.connections -= 1
        active, self._active = self._active, None
        self._queue.clear()
        self._body_owner = None
        self._out.clear()
        self._parser = None
        self.transport = None
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()
        if active is not None:
            active.lost()

    def pause_writing(self) -> None:
        self.write_paused = True
        self._pause(_WRITE)

    def resume_writing(self) -> None:
        self.write_paused = False
        self._resume(_WRITE)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        if self._active is not None:
            self._active.writing_resumed()

    # ------------------------------------------------ httptools callbacks

    # There is no on_message_begin: httptools calls only the callbacks a
    # protocol has, and the URL is the first part of every request anyway.

    def on_url(self, url: bytes) -> None:
        if self._in_head:
            # The rest of a target that arrived in more than one read.
            url = self._url + url
        else:
            # A new request head begins.
            self._in_head = True
            self._headers = []
            self._head_bytes = 0
            self._head_reads = -1
            self._host_count = 0
            self._seen = 0
        self._url = url
        if len(url) > self._config.max_header_line:
            raise _LimitHit(414)

    def on_header(self, name: bytes, value: bytes) -> None:
        # Called for every header line, so it is kept short: the limits, one
        # dict lookup for the lowercased name and whether the server itself
        # cares about the header, and nothing more for the others.
        size = len(name) + len(value) + 4
        head_bytes = self._head_bytes = self._head_bytes + size
        if head_bytes > self._small_head:
            self._check_header_limits(size, head_bytes)
        if not self._in_head:
            return  # a trailer of a chunked body: counted, not kept
        headers = self._headers
        if len(headers) >= self._config.max_headers:
            raise _LimitHit(431)
        known = _NAMES.get(name)
        if known is None:
            known = _learn_name(name)
        lowered, role = known
        headers.append((lowered, value))
        if role == _HOST:
            # Every HTTP/1.1 request has one: counted here, without a call.
            self._host_count += 1
        elif role:
            self._header_role(role, value)

    def _check_header_limits(self, size: int, head_bytes: int) -> None:
        """The line and head size limits, for a head past ``_small_head``."""
        config = self._config
        if size > config.max_header_line or head_bytes > config.max_header_bytes:
            raise _LimitHit(431)

    def _header_role(self, role: int, value: bytes) -> None:
        if role == _CONTENT_LENGTH:
            # llhttp has checked it is digits and not duplicated.
            if int(value) > self._config.max_body:
                raise _LimitHit(413)
        elif role == _EXPECT:
            # The last Expect header decides, as it did when this was a flag.
            if value.lower() == b"100-continue":
                self._seen |= _SEEN_EXPECT
            else:
                self._seen &= ~_SEEN_EXPECT
        elif role == _FORWARDED:
            self._seen |= _SEEN_FORWARDED
        elif role == _UPGRADE:
            self._seen |= _SEEN_UPGRADE
            self._upgrade_to = value
        elif role == _CONNECTION:
            self._seen |= _SEEN_CONNECTION
        elif value.lower().find(b"text/event-stream") >= 0:  # _ACCEPT
            self._seen |= _SEEN_EVENTS

    def on_headers_complete(self) -> None:
        parser = self._parser
        self._in_head = False
        keep_alive = parser.should_keep_alive()
        seen = self._seen
        if keep_alive and not (seen and seen & _SEEN_CONNECTION):
            # Without a Connection header, llhttp keeps a connection alive
            # only for HTTP/1.1, the one version it accepts with a minor
            # number above 0: the version is known without asking httptools,
            # which formats it into a new string each time (about 250 ns).
            version = "1.1"
        else:
            version = parser.get_http_version()
        # RFC 9112 section 3.2: a 1.1 request has exactly one Host header,
        # and no request may have two.
        if version == "1.1":
            if self._host_count != 1:
                raise _LimitHit(400)
        elif version == "1.0":
            if self._host_count > 1:
                raise _LimitHit(400)
        else:
            raise _LimitHit(505)

        method_bytes = parser.get_method()
        method = _METHODS.get(method_bytes)
        if method is None:
            method = _METHODS.setdefault(method_bytes, method_bytes.decode("ascii"))
        target = self._url
        if target[:1] == b"/":
            # find, not "in": see asgi.decode_path.
            if target.find(b"?") >= 0:
                raw_path, _, query = target.partition(b"?")
            else:
                raw_path, query = target, b""
        elif (target == b"*" and method == "OPTIONS") or method == "CONNECT":
            raw_path, query = target, b""
        else:
            # Absolute form (RFC 9112 section 3.2.2), as proxies send it.
            try:
                url = httptools.parse_url(target)
            except httptools.HttpParserInvalidURLError:
                raise _LimitHit(400) from None
            raw_path, query = url.path or b"/", url.query or b""
            if url.fragment or raw_path[:1] != b"/":
                raise _LimitHit(400)

        keep_alive = keep_alive and not self.closing
        kind = None
        exchange_class = self.server.exchange_class
        if seen and seen & (_SEEN_UPGRADE | _SEEN_EVENTS):
            kind = upgrade.request_kind(
                method,
                self._headers,
                self._upgrade_to if seen & _SEEN_UPGRADE else None,
                bool(seen & _SEEN_EVENTS),
            )
            if kind is not None:
                exchange_class = self.server.upgrade_exchange_class(kind)
        exchange = exchange_class(
            self, method, target, raw_path, query, version, self._headers, keep_alive
        )
        if seen:
            # Rare: the exchange starts out without any of these.
            exchange.expect_continue = bool(seen & _SEEN_EXPECT)
            exchange.forwarded = bool(seen & _SEEN_FORWARDED)
            exchange.upgrade = kind
        self._body_owner = exchange
        queue = self._queue
        queue.append(exchange)
        if len(queue) >= MAX_QUEUED:
            self._pause(_QUEUE)
        if not keep_alive:
            # Nothing after this request is read (RFC 9112 section 9.6).
            self.closing = True

    def on_body(self, body: bytes) -> None:
        exchange = self._body_owner
        if exchange is None:
            return
        exchange.body_size += len(body)
        if exchange.body_size > self.server.config.max_body:
            raise _LimitHit(413)
        exchange.feed_body(body)

    def on_message_complete(self) -> None:
        exchange, self._body_owner = self._body_owner, None
        if exchange is not None:
            exchange.body_done = True
            exchange.end_body()

    # ---------------------------------------------------------- running

    def _drive(self) -> None:
        """Run queued exchanges, from a loop callback: corked, as in a read."""
        self._corked = True
        self._run_queued()
        self._uncork()

    def _run_queued(self) -> None:
        """Run queued exchanges until one is busy or none is left.

        The caller corks the writes around it (see the module docstring).
        """
        self._driving = True
        try:
            queue = self._queue
            while self._active is None and queue:
                exchange = self._active = queue.popleft()
                if self._paused and self._paused & _QUEUE and len(queue) < _RESUME_AT:
                    self._resume(_QUEUE)
                exchange.run()
            if self._active is None and not queue and self._error_status:
                self._send_error()
        finally:
            self._driving = False

    def response_done(self, exchange: Exchange) -> None:
        """The active exchange's response is complete."""
        if exchange is not self._active:
            return
        self._active = None
        if self.is_closed:
            return
        if not exchange.keep_alive or (
            exchange.expect_continue
            and not exchange.continue_sent
            and not exchange.body_done
        ):
            # A client still waiting to be told to send its body may never
            # send it, so the connection cannot be reused.
            self._close_after_flush()
            return
        if self._paused and self._paused & _BODY:
            # The rest of an unread body is read and dropped.
            self._resume(_BODY)
        if self._queue or self._error_status:
            if not self._driving:
                # Not from inside the application's own step: run the next
                # request in the connection's context, not in this one's.
                self.loop.call_soon(self._drive, context=self._context)
        elif self.closing and self._body_owner is None:
            self._close_after_flush()
        elif not self._in_head and self._body_owner is None:
            self._idle_since = self.server.reactor.now

    def response_failed(self, exchange: Exchange) -> None:
        """The active response broke off midway: close the connection."""
        if exchange is self._active:
            self._active = None
        self._close_after_flush()

    def send_continue(self, exchange: Exchange) -> None:
        """Tell a client waiting on ``Expect: 100-continue`` to send the body."""
        if exchange.continue_sent or exchange.state != 0 or self.is_closed:
            return
        exchange.continue_sent = True
        self.write(_CONTINUE)

    # ---------------------------------------------------------- writing

    def write(self, data: bytes) -> None:
        if self._corked:
            self._out.append(data)
        elif self.transport is not None:
            self.transport.write(data)

    def drain(self) -> asyncio.Future[None]:
        """A future done when the transport can take more writes."""
        if not self.write_paused or self.is_closed:
            return self.done
        waiter = self.loop.create_future()
        self._waiters.append(waiter)
        return waiter

    def _uncork(self) -> None:
        self._corked = False
        out = self._out
        if out and self.transport is not None:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()
        if self.closing and self._active is None and not self._queue:
            self._close_now()

    def _close_after_flush(self) -> None:
        self.closing = True
        self._pause(_DONE)
        if not self._corked:
            self._close_now()

    def _close_now(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    # ------------------------------------------------------- flow control

    def pause_body(self) -> None:
        self._pause(_BODY)

    def resume_body(self) -> None:
        self._resume(_BODY)

    def _pause(self, why: int) -> None:
        if not self._paused and self.transport is not None:
            self.transport.pause_reading()
        self._paused |= why

    def _resume(self, why: int) -> None:
        if not self._paused & why:
            return
        self._paused &= ~why
        if not self._paused and self.transport is not None:
            self.transport.resume_reading()

    # ------------------------------------------------------------ errors

    def _check_partial_head(self, nbytes: int) -> None:
        """Bound a head that is still incomplete after this read.

        Complete lines were measured by the callbacks; a line still arriving
        is only seen here, by the bytes read while the head is open. The read
        in which the head began is not counted (part of it may belong to the
        request before), so a head is cut off at most one read past the limit.
        """
        if self._head_reads < 0:
            self._head_reads = 0
            return
        self._head_reads += nbytes
        if self._head_reads > self.server.config.max_header_bytes:
            self._bad_request(414 if not self._headers else 431)

    def _parse_error(self, exc: Exception) -> None:
        if self.closing and self._body_owner is None:
            # Bytes after a "Connection: close" request are ignored, not
            # answered (llhttp reports them as an error).
            return
        logger.debug("Bad request from %s: %s", self.client, exc)
        self._bad_request(400)

    def _bad_request(self, status: int) -> None:
        """Answer requests already parsed, then ``status``, then close."""
        self.closing = True
        self._pause(_DONE)
        self._parser = None
        broken = self._body_owner
        self._body_owner = None
        if broken is not None and broken is self._active:
            # Its application is running and reading a body that cannot be
            # trusted any more: it is told the client went away, and the
            # connection closes after whatever it answers.
            broken.keep_alive = False
            broken.lost()
            return
        if broken is not None and broken in self._queue:
            self._queue.remove(broken)
        self._error_status = status

    def _send_error(self) -> None:
        status, self._error_status = self._error_status, 0
        self.write(simple_response(status, self.server.server_line))
        self._close_after_flush()

    def _upgrade(self, rest: bytes) -> None:
        """A request asked to switch protocols (``Upgrade``, ``CONNECT``).

        Nothing after its head is HTTP: parsing stops, and ``rest`` is kept
        for the protocol the application may switch to (see :meth:`detach`).
        If it does not, the request is answered as plain HTTP and the
        connection closes after it.
        """
        self._leftover = rest
        self.closing = True
        self._pause(_DONE)
        self._parser = None
        if self._queue:
            self._queue[-1].keep_alive = False
        elif self._active is not None:
            self._active.keep_alive = False

    def detach(
        self, exchange: Exchange, head: bytes
    ) -> tuple[asyncio.Transport, bytes]:
        """Write ``head`` and let go of the transport for another protocol.

        ``exchange`` must be the active one. The responses before it go out
        first; then the parser, the buffers and every other exchange are
        dropped, and the reactor forgets this protocol. The connection stays
        counted in the listener's capacity: the caller hands
        ``server.release_connection`` to the protocol that takes over.

        Returns:
            The transport, and the bytes read after the request's head.

        Raises:
            RuntimeError: the connection is gone or ``exchange`` is not the
                one being answered.
        """
        transport = self.transport
        if (
            transport is None
            or self.is_closed
            or transport.is_closing()
            or exchange is not self._active
        ):
            raise RuntimeError("the connection cannot be upgraded any more")
        out = self._out
        out.append(head)
        transport.write(b"".join(out))
        out.clear()
        leftover = self._leftover
        self.is_closed = True
        self.closing = True
        self._corked = False
        self._parser = None
        self._active = None
        self._body_owner = None
        self._queue.clear()
        self._headers = []
        self._leftover = b""
        self.template = {}
        self.transport = None
        self._counted = False
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.server.reactor.discard_connection(self)
        return transport, leftover

    # ----------------------------------------- the reactor's Managed API

    def idle_for(self, now: float) -> bool:
        """Once a second: enforce the header and keep-alive timeouts."""
        if self.is_closed or self.closing:
            return False
        config = self.server.config
        if self._active is not None or self._queue or self._body_owner:
            return False
        if self._idle_since < 0:
            # A request head is due (or the first one since the connect).
            if now - self._head_since >= config.header_timeout:
                logger.debug("Header timeout for %s.", self.client)
                self._parser = None
                self.write(simple_response(408, self.server.server_line))
                self._close_after_flush()
                return True
            return False
        if now - self._idle_since >= config.keep_alive:
            self._close_after_flush()
            return True
        return False

    def shutdown(self) -> None:
        """Finish the response under way (if any), then close."""
        if self.is_closed:
            return
        self.closing = True
        self._pause(_DONE)
        self._queue.clear()
        if self._active is None:
            self._close_after_flush()
        else:
            self._active.keep_alive = False

    def abort(self, reason: CloseReason) -> None:
        if self.transport is not None:
            self.transport.abort()

    def __repr__(self) -> str:
        state = "closed" if self.is_closed else "open"
        return f"<HttpProtocol {self.client!r} {state}>"
