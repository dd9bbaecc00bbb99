"""permessage-deflate (RFC 7692) for the connections that negotiate it.

Off by default (``websocket_compression``). When it is on and a client offers
it, that one connection decodes and encodes frames with wsproto and its
``PerMessageDeflate`` extension; every other connection keeps the hand-written
frame path of ``frames``. wsproto is imported only here, so a server that
never compresses never loads it.

What a compressing connection costs is zlib state that lives as long as the
connection does (context takeover, both directions). The default window size
and compressor memory level (``config.WEBSOCKET_WINDOW_BITS`` and
``WEBSOCKET_MEM_LEVEL``) are chosen for that, and both are settings
(``websocket_window_bits``, ``websocket_mem_level``; ``window_bits`` and
``mem_level`` for the client). The figures come from ``tracemalloc`` over 200
zlib objects after one JSON message:

    deflate, 15-bit window, memLevel 8 (zlib's defaults):  262 KiB
    deflate, 10-bit window, memLevel 4 (our defaults):      18 KiB
    inflate, 15-bit window:                                40.5 KiB
    inflate, 10-bit window (ours, when the client allows):  9.5 KiB

docs/websocket.md has the figure per connection, measured in a server.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from threading import get_ident
from typing import Any

from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import (
    CloseReason,
    FrameDecoder,
    FrameProtocol,
    Opcode,
    ParseFailed,
    RsvBits,
)

from iodine.core.connection import OPEN_STATE
from iodine.http.config import WEBSOCKET_MEM_LEVEL, WEBSOCKET_WINDOW_BITS
from iodine.http.websocket import frames
from iodine.http.websocket.asgi import AsgiWebSocketConnection
from iodine.http.websocket.client import WebSocketClient
from iodine.http.websocket.connection import WebSocketConnection
from iodine.http.websocket.frames import Decoder, Event, ProtocolError

_PARAMETERS = frozenset(
    (
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
        "client_max_window_bits",
    )
)


@dataclass(frozen=True)
class Agreement:
    """What the server answers to a permessage-deflate offer.

    Attributes:
        response: The ``Sec-WebSocket-Extensions`` value to send.
        server_bits: Window bits the server compresses with.
        client_bits: Window bits the client compresses with (15 unless the
            client let the server choose).
        server_no_context_takeover: The server resets its compressor after
            each message (the client asked for it).
        client_no_context_takeover: The client does likewise.
        mem_level: zlib memLevel of this side's compressor.
    """

    response: bytes
    server_bits: int
    client_bits: int
    server_no_context_takeover: bool
    client_no_context_takeover: bool
    mem_level: int

    def codec(self, max_message: int, *, client: bool = False) -> DeflateCodec:
        """A fresh codec for one connection (a server's unless ``client``)."""
        return DeflateCodec(self, max_message, client=client)


def _parse_offer(offer: str) -> dict[str, str | None] | None:
    """The parameters of one permessage-deflate offer; None if not one, or
    if it breaks section 7.1 (unknown or repeated parameter, bad value)."""
    name, *parts = [part.strip() for part in offer.split(";")]
    if name.lower() != "permessage-deflate":
        return None
    params: dict[str, str | None] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if key not in _PARAMETERS or key in params:
            return None
        params[key] = value.strip().strip('"') if sep else None
    for key in ("server_max_window_bits", "client_max_window_bits"):
        if key not in params:
            continue
        bits = params[key]
        if bits is None:
            if key == "client_max_window_bits":
                continue  # no value: "the server may choose", section 7.1.2.2
            return None
        if not (bits.isdigit() and 8 <= int(bits) <= 15):
            return None
    for key in ("server_no_context_takeover", "client_no_context_takeover"):
        if params.get(key) is not None:
            return None  # these take no value
    return params


def negotiate(
    offers: list[str],
    window_bits: int = WEBSOCKET_WINDOW_BITS,
    mem_level: int = WEBSOCKET_MEM_LEVEL,
) -> Agreement | None:
    """Accept the first permessage-deflate offer the server can honour.

    Args:
        offers: The request's ``Sec-WebSocket-Extensions`` entries, in order.
        window_bits: The largest window either side may use (9-15); the
            client's only when its offer lets the server limit it.
        mem_level: zlib memLevel of the server's compressor (1-9).

    Returns:
        The agreement, or None to go on without compression.
    """
    for offer in offers:
        params = _parse_offer(offer)
        if params is None:
            continue

        # The server's window: at most what the client allows. zlib cannot
        # compress with an 8-bit window, so such an offer is declined.
        asked = params.get("server_max_window_bits")
        server_bits = min(window_bits, int(asked) if asked else 15)
        if server_bits < 9:
            continue
        parts = ["permessage-deflate"]
        server_reset = "server_no_context_takeover" in params
        if server_reset:
            parts.append("server_no_context_takeover")
        client_reset = "client_no_context_takeover" in params
        if client_reset:
            parts.append("client_no_context_takeover")
        parts.append(f"server_max_window_bits={server_bits}")

        # The client's window is ours to limit only if it said so.
        client_bits = 15
        if "client_max_window_bits" in params:
            allowed = params["client_max_window_bits"]
            client_bits = min(window_bits, int(allowed or 15))
            parts.append(f"client_max_window_bits={client_bits}")
        return Agreement(
            "; ".join(parts).encode(),
            server_bits,
            # Inflating with a larger window than the sender used is fine,
            # and zlib has no 8-bit inflate window either.
            max(client_bits, 9),
            server_reset,
            client_reset,
            mem_level,
        )
    return None


def accept(
    extensions: list[str],
    window_bits: int = WEBSOCKET_WINDOW_BITS,
    mem_level: int = WEBSOCKET_MEM_LEVEL,
) -> Agreement:
    """Check a server's answer to the client's offer (``client.DEFLATE_OFFER``;
    RFC 7692 section 7.1).

    Args:
        extensions: The ``Sec-WebSocket-Extensions`` entries of the ``101``.
        window_bits: The client compresses with at most this window (9-15),
            whatever larger one the server allows.
        mem_level: zlib memLevel of the client's compressor (1-9).

    Raises:
        ValueError: the answer is not one permessage-deflate this client can
            use (the handshake then fails, as section 7.1 asks).
    """
    if len(extensions) != 1:
        raise ValueError(f"the server chose extensions we did not offer: {extensions}")
    params = _parse_offer(extensions[0])
    if params is None:
        raise ValueError(f"invalid permessage-deflate answer: {extensions[0]!r}")
    server_bits = params.get("server_max_window_bits")
    client_bits = window_bits
    if "client_max_window_bits" in params:
        allowed = params["client_max_window_bits"]
        if allowed is None:
            raise ValueError("client_max_window_bits without a value in the answer")
        # zlib cannot compress within an 8-bit window (it widens it to 9).
        if int(allowed) < 9:
            raise ValueError(f"client_max_window_bits={allowed} is below zlib's 9")
        client_bits = min(client_bits, int(allowed))
    return Agreement(
        b"",
        # Inflating with a window at least as large as the sender's is
        # always right, and zlib has no 8-bit inflate window.
        max(int(server_bits or 15), 9),
        client_bits,
        "server_no_context_takeover" in params,
        "client_no_context_takeover" in params,
        mem_level,
    )


class _Extension(PerMessageDeflate):
    """wsproto's extension with a bounded inflate and a smaller compressor.

    Three changes: a message may not inflate past ``max_message`` (1009, and
    zlib stops there, so a small frame cannot make the server allocate a
    huge one); the compressor uses the agreement's memLevel; and a control frame
    leaves the state of messages alone. wsproto 1.2 resets it on a control
    frame between two fragments, which breaks the rest of the message, and
    takes a control frame between two messages for the start of an
    uncompressed one, so the compressed message after a ping was delivered
    as it came off the wire.
    """

    def __init__(self, agreement: Agreement, max_message: int) -> None:
        super().__init__(
            client_no_context_takeover=agreement.client_no_context_takeover,
            client_max_window_bits=agreement.client_bits,
            server_no_context_takeover=agreement.server_no_context_takeover,
            server_max_window_bits=agreement.server_bits,
        )
        self._enabled = True
        self.mem_level = agreement.mem_level
        self.max_message = max_message
        self.received = 0

    def frame_inbound_header(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        if opcode.iscontrol():
            # Section 6.1: control frames are never compressed.
            if rsv.rsv1:
                return CloseReason.PROTOCOL_ERROR
            self._inbound_is_compressible = False
            return RsvBits(True, False, False)
        return super().frame_inbound_header(proto, opcode, rsv, payload_length)

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        if not self._inbound_is_compressible:
            return data  # a control frame
        if not self._inbound_compressed:
            self.received += len(data)
            if self.received > self.max_message:
                return CloseReason.MESSAGE_TOO_BIG
            return data
        decompressor = self._decompressor
        assert decompressor is not None
        room = self.max_message - self.received + 1
        try:
            out = decompressor.decompress(data, room)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self.received += len(out)
        if self.received > self.max_message or decompressor.unconsumed_tail:
            return CloseReason.MESSAGE_TOO_BIG
        return out

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        if not self._inbound_is_compressible or not fin:
            return None  # a control frame, or a fragment: the message goes on
        received, self.received = self.received, 0
        if not self._inbound_compressed:
            self._inbound_compressed = None
            return None

        # The end of a compressed message: the four bytes section 7.2.2 has
        # the sender drop, inflated under the same bound as the rest (wsproto
        # inflates them, and flushes, without one).
        decompressor = self._decompressor
        assert decompressor is not None
        try:
            out = decompressor.decompress(b"\x00\x00\xff\xff", self.max_message + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        if received + len(out) > self.max_message or decompressor.unconsumed_tail:
            return CloseReason.MESSAGE_TOO_BIG
        # The peer resets its compressor after each message: so must we.
        if (
            self.server_no_context_takeover
            if proto.client
            else self.client_no_context_takeover
        ):
            self._decompressor = None
        self._inbound_compressed = None
        return out

    def frame_outbound(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        data: bytes,
        fin: bool,
    ) -> tuple[RsvBits, bytes]:
        if self._compressor is None and opcode in (Opcode.TEXT, Opcode.BINARY):
            bits = (
                self.client_max_window_bits
                if proto.client
                else self.server_max_window_bits
            )
            self._compressor = zlib.compressobj(
                zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -bits, self.mem_level
            )
        return super().frame_outbound(proto, opcode, rsv, data, fin)


class DeflateCodec(Decoder):
    """Decodes and encodes a compressing connection's frames with wsproto.

    It stands in for the connection's :class:`frames.Decoder` (same
    ``receive`` contract) and frames the messages it sends.
    """

    __slots__ = ("_pieces", "_proto")

    def __init__(
        self, agreement: Agreement, max_message: int, *, client: bool = False
    ) -> None:
        super().__init__(client=client, max_message=max_message)
        self._proto = FrameProtocol(client, [_Extension(agreement, max_message)])
        self._pieces: list[Any] | None = None

    def receive(self, data: bytes) -> list[Event]:
        """Decode ``data`` (see :meth:`frames.Decoder.receive`)."""
        if self.closed:
            return []
        events: list[Event] = []
        self._proto.receive_bytes(data)
        try:
            for frame in self._proto.received_frames():
                self._on_frame(frame, events)
                if frame.opcode is Opcode.CLOSE:
                    break  # nothing after a close frame is read
        except ParseFailed as exc:
            self.closed = True
            error = ProtocolError(int(exc.code), str(exc))
            error.events = events
            raise error from None
        return events

    def _on_frame(self, frame: Any, events: list[Event]) -> None:
        opcode = frame.opcode
        if opcode is Opcode.PING or opcode is Opcode.PONG:
            events.append((int(opcode), bytes(frame.payload)))
            return
        if opcode is Opcode.CLOSE:
            code, reason = frame.payload
            events.append((frames.CLOSE, (int(code), reason)))
            self.closed = True
            return

        # A data frame, or a part of one: wsproto hands over what each read
        # brought; the message is delivered whole.
        parts = self._pieces
        if parts is None:
            parts = self._pieces = []
        parts.append(frame.payload)
        if not frame.message_finished:
            return
        self._pieces = None
        if opcode is Opcode.TEXT:
            events.append((frames.TEXT, "".join(parts)))
        else:
            events.append((frames.BINARY, b"".join(parts)))

    def encode(self, data: str | bytes | bytearray | memoryview) -> bytes:
        """One compressed frame carrying ``data`` (text for ``str``)."""
        if isinstance(data, memoryview):
            data = data.tobytes()
        return bytes(self._proto.send_data(data, True))


class DeflateWrites:
    """The ``write`` of a compressing connection (a mixin, no state).

    Compression state must only be touched by one thread, so a write from
    another thread is framed on the loop, in the order it was made.
    """

    __slots__ = ()

    def write(self, data: bytes | bytearray | memoryview | str) -> bool:
        """Send ``data`` as one compressed message: ``str`` as text."""
        conn: Any = self
        if conn._state != OPEN_STATE:
            return False
        if get_ident() != conn._tid:
            payload = data if isinstance(data, str) else bytes(data)
            conn._count_foreign(len(payload))
            conn._reactor.call_soon_threadsafe(conn._write_later, payload)
            return True
        conn._transport.write(conn._decoder.encode(data))
        if conn._write_paused:
            conn._check_slow_consumer()
        return bool(conn._state == OPEN_STATE)

    def _write_later(self, data: str | bytes) -> None:
        conn: Any = self
        conn._count_foreign(-len(data))
        if conn._state == OPEN_STATE:
            conn._send(conn._decoder.encode(data))


class DeflateWebSocketConnection(DeflateWrites, WebSocketConnection):
    """A native WebSocket connection that negotiated permessage-deflate."""

    __slots__ = ()


class DeflateWebSocketClient(DeflateWrites, WebSocketClient):
    """A WebSocket client whose server accepted permessage-deflate."""

    __slots__ = ()


class AsgiDeflateConnection(DeflateWrites, AsgiWebSocketConnection):
    """An ASGI application's WebSocket with permessage-deflate (here rather
    than in ``websocket.asgi``, which every ASGI server loads)."""

    __slots__ = ()
