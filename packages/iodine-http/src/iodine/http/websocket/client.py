"""The WebSocket client behind ``iodine.connect(url="ws://...")``.

Core hands ``ws://`` URLs to :func:`connect` (entry point group
``iodine.clients``). The client connects through ``reactor.open_client``,
sends the opening request, checks the ``101`` and its accept key, then runs as
a client-side :class:`WebSocketConnection`: it masks what it sends and refuses
masked frames. The handler's ``on_open`` runs once the handshake succeeded; a
failed connect or a refused handshake calls ``on_close`` with
``CloseReason.CONNECT_FAILED`` and the cause in ``conn.error``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from iodine.core import addresses
from iodine.core.connection import Connection
from iodine.core.reactor import Reactor
from iodine.http.config import (
    MEM_LEVEL_RANGE,
    WEBSOCKET_MEM_LEVEL,
    WEBSOCKET_WINDOW_BITS,
    WINDOW_BITS_RANGE,
    check_whole_in,
)
from iodine.http.upgrade import deflate_module
from iodine.http.websocket import frames, handshake
from iodine.http.websocket.connection import (
    DEFAULT_MAX_MESSAGE,
    DEFAULT_PING,
    WebSocketConnection,
)
from iodine.http.websocket.frames import BINARY, TEXT

logger = logging.getLogger("iodine.ws")

# A server has this long to answer the opening request; the same as
# websockets' open_timeout.
HANDSHAKE_TIMEOUT = 10.0

# The permessage-deflate offers of ``compression=True``, in order of
# preference: the client's window is the server's to limit in both, and the
# second lets a server that only takes clients resetting their compressor
# after each message pick that (``deflate.accept`` checks the answer).
DEFLATE_OFFER = (
    b"permessage-deflate; client_max_window_bits, "
    b"permessage-deflate; client_max_window_bits; client_no_context_takeover"
)

# The largest response head accepted; h11's default for any head is 16 KiB.
MAX_RESPONSE_HEAD = 16 * 1024


class _Handshake:
    """What the client holds only until the server's 101 arrives."""

    __slots__ = ("compression", "key", "received", "subprotocols")

    def __init__(
        self,
        key: bytes,
        subprotocols: Sequence[str],
        compression: tuple[int, int] | None,
    ) -> None:
        self.key = key
        self.subprotocols = list(subprotocols)
        self.compression = compression
        self.received = bytearray()


class WebSocketClient(WebSocketConnection):
    """A client-side WebSocket connection (see :class:`WebSocketConnection`).

    Attributes:
        url: The URL connected to.
        response_headers: The ``101`` response's headers, once open.
    """

    __slots__ = ("_handshake", "_request", "response_headers", "url")

    def __init__(
        self,
        reactor: Reactor,
        handler: object,
        url: str,
        request: bytes,
        key: bytes,
        *,
        subprotocols: Sequence[str] = (),
        max_message: int = DEFAULT_MAX_MESSAGE,
        ping: float = DEFAULT_PING,
        compression: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(
            reactor, handler, max_message=max_message, ping=ping, client=True
        )
        self.url = url
        self.response_headers: list[tuple[bytes, bytes]] = []
        self._request: bytes | None = request
        self._handshake: _Handshake | None = _Handshake(key, subprotocols, compression)

    def write(self, data: bytes | bytearray | memoryview | str) -> bool:
        """Send ``data`` as one masked message: ``str`` as text, bytes as binary.

        Messages written before the handshake completes are sent after it.
        """
        if isinstance(data, str):
            frame = frames.encode(TEXT, data.encode(), mask=frames.new_mask())
        else:
            frame = frames.encode(BINARY, data, mask=frames.new_mask())
        return self._write_frame(frame)

    def _frame(self, opcode: int, payload: bytes) -> bytes:
        return frames.encode(opcode, payload, mask=frames.new_mask())

    # ------------------------------------------------------ asyncio protocol API

    def connection_made(self, transport: Any) -> None:
        # TCP is up: send the request and wait for the 101 before the
        # connection counts as open (core's connection_made runs then).
        self._transport = transport
        self.peer = transport.get_extra_info("peername")
        request, self._request = self._request, None
        assert request is not None
        transport.write(request)
        self._reactor.loop.call_later(HANDSHAKE_TIMEOUT, self._handshake_expired)

    def data_received(self, data: bytes) -> None:
        if self._handshake is None:
            super().data_received(data)
            return
        self._handshake.received += data
        self._continue_handshake()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._handshake is not None:
            self._refused(exc or ConnectionError("the server closed the connection"))
            return
        super().connection_lost(exc)

    # --------------------------------------------------------------- handshake

    def _continue_handshake(self) -> None:
        state = self._handshake
        assert state is not None
        end = state.received.find(b"\r\n\r\n")
        if end < 0:
            if len(state.received) > MAX_RESPONSE_HEAD:
                self._refused(handshake.HandshakeError("response head too large"))
            return
        head = bytes(state.received[:end])
        leftover = bytes(state.received[end + 4 :])
        try:
            response = handshake.check_response(
                head,
                state.key,
                state.subprotocols,
                extensions_offered=state.compression is not None,
            )
            if response.extensions:
                assert state.compression is not None  # checked just above
                self._compress(response.extensions, *state.compression)
        except handshake.HandshakeError as exc:
            self._refused(exc)
            return

        # Accepted: open as core does (on_open, then the early writes), then
        # decode any frame that came with the 101.
        self._handshake = None
        self.subprotocol = response.subprotocol
        self.response_headers = response.headers
        transport = self._transport
        Connection.connection_made(self, transport)
        if leftover:
            self._last_seen = self._reactor.now
            self.feed(leftover)

    def _compress(
        self, extensions: list[str], window_bits: int, mem_level: int
    ) -> None:
        """Frame and read messages with the permessage-deflate the server
        accepted from our offer, from the first message on.

        Raises:
            HandshakeError: the server's answer does not fit our offer.
        """
        deflate = deflate_module()
        try:
            agreement = deflate.accept(extensions, window_bits, mem_level)
        except ValueError as exc:
            raise handshake.HandshakeError(str(exc)) from None
        # The same object, now writing through the codec: messages written
        # before the handshake were framed plain, which the extension allows.
        self.__class__ = deflate.DeflateWebSocketClient
        self._decoder = agreement.codec(self._max_message, client=True)

    def _refused(self, exc: BaseException) -> None:
        """End a connection whose handshake failed: on_close, CONNECT_FAILED."""
        if self._handshake is None:
            return
        self._handshake = None
        logger.debug("WebSocket handshake with %s failed: %s", self.url, exc)
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        self.close_code = frames.ABNORMAL_CLOSURE
        self.connect_failed(exc)

    def _handshake_expired(self) -> None:
        self._refused(TimeoutError(f"no handshake answer in {HANDSHAKE_TIMEOUT} s"))


def _header_pairs(
    headers: Mapping[str, str] | Iterable[tuple[Any, Any]] | None,
) -> list[tuple[bytes | str, bytes | str]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)


def connect(
    reactor: Reactor, url: str, handler: object, options: dict[str, Any]
) -> WebSocketClient:
    """Open a WebSocket client connection (the ``iodine.clients`` factory).

    Args:
        reactor: The reactor to run on.
        url: ``ws://host[:port]/path?query``.
        handler: The connection's handler (object, class or factory).
        options: From ``iodine.connect``: ``headers`` (a dict or pairs),
            ``subprotocols`` (names, in order of preference), ``ping``
            (seconds, default 40; 0 for none), ``max_message`` (bytes,
            default 256 KiB), ``compression`` (offer permessage-deflate;
            off by default), ``window_bits`` and ``mem_level`` (with
            compression: the largest window the client compresses with,
            9-15, default 10, and its compressor's zlib memLevel, 1-9,
            default 4); core also passes ``timeout``, which sets ``ping``
            when given.

    Returns:
        The connection; it opens once the handshake succeeds.

    Raises:
        NotImplementedError: a ``wss://`` URL (TLS is not available yet).
        ValueError: a URL without a host, or a header holding CR or LF.
        TypeError: an option this client does not know.
    """
    options = dict(options)
    headers = _header_pairs(options.pop("headers", None))
    subprotocols = list(options.pop("subprotocols", None) or ())
    timeout = float(options.pop("timeout", 0) or 0)
    ping = float(options.pop("ping", timeout or DEFAULT_PING))
    max_message = int(options.pop("max_message", DEFAULT_MAX_MESSAGE))
    compression = bool(options.pop("compression", False))
    window_bits = options.pop("window_bits", WEBSOCKET_WINDOW_BITS)
    mem_level = options.pop("mem_level", WEBSOCKET_MEM_LEVEL)
    check_whole_in("window_bits", window_bits, WINDOW_BITS_RANGE)
    check_whole_in("mem_level", mem_level, MEM_LEVEL_RANGE)
    if options:
        raise TypeError(f"unexpected option(s) for ws://: {', '.join(options)}")

    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "wss":
        raise NotImplementedError(
            "wss:// needs TLS, which iodine does not provide yet; use ws://"
        )
    if scheme != "ws":
        raise ValueError(f"not a ws:// URL: {url!r}")
    if not parts.hostname:
        raise ValueError(f"no host in {url!r}")
    port = parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # The Host header carries the port only when it is not the default.
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if port != 80:
        host = f"{host}:{port}"

    key = handshake.new_key()
    if compression:
        headers.append((b"sec-websocket-extensions", DEFLATE_OFFER))
    request = handshake.client_request(host, target, key, subprotocols, headers)
    conn = WebSocketClient(
        reactor,
        handler,
        url,
        request,
        key,
        subprotocols=subprotocols,
        max_message=max_message,
        ping=ping,
        compression=(window_bits, mem_level) if compression else None,
    )
    reactor.open_client(conn, addresses.Endpoint("tcp", parts.hostname, port))
    return conn
