"""WebSocket framing (RFC 6455 section 5): a sans-IO decoder and the encoders.

The decoder turns the bytes of one read into events: whole messages (text as
``str``, binary as ``bytes``, fragments already joined) and control frames.
Every rule of section 5 that a receiver must enforce raises
:class:`ProtocolError` carrying the close code to fail the connection with
(section 7.4): 1002 for framing errors, 1007 for invalid UTF-8, 1009 for a
message over the size limit.

Speed shapes two choices here (numbers in ``shared/PERFORMANCE.md``, echo of
32-byte messages with 100 clients): a read that is exactly one small masked
frame takes a fast path that skips the general loop (+7 %), and unmasking XORs
the payload as one big integer instead of byte by byte (+25 % over the
``bytes.translate`` trick, equal at 64 KiB).
"""

from __future__ import annotations

import codecs
import os
from typing import Any

# Opcodes (section 5.2). The data opcodes double as event kinds.
CONTINUATION = 0x0
TEXT = 0x1
BINARY = 0x2
CLOSE = 0x8
PING = 0x9
PONG = 0xA

_DATA_OPCODES = (TEXT, BINARY)
_CONTROL_OPCODES = (CLOSE, PING, PONG)

# Close codes (section 7.4.1 and the IANA registry).
NORMAL_CLOSURE = 1000
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
UNSUPPORTED_DATA = 1003
NO_STATUS_RECEIVED = 1005  # reported locally; never on the wire
ABNORMAL_CLOSURE = 1006  # reported locally; never on the wire
INVALID_PAYLOAD = 1007
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
MANDATORY_EXTENSION = 1010
INTERNAL_ERROR = 1011

# Codes a peer may put in a close frame: the registered ones that are not
# reserved for local use (1004-1006 and 1015 are), 3000-3999 for libraries and
# frameworks, 4000-4999 for applications. 1012-1014 (service restart, try again
# later, bad gateway) were registered after the RFC; the Autobahn suite leaves
# them unchecked and browsers send them, so they are accepted.
_VALID_CLOSE_CODES = frozenset((1000, 1001, 1002, 1003, *range(1007, 1015)))

# A control frame carries at most 125 bytes (section 5.5), so a close reason is
# at most 123 bytes of UTF-8 after the two-byte code.
MAX_CONTROL_PAYLOAD = 125

# Event kinds the decoder returns, besides TEXT, BINARY, PING and PONG.
Event = tuple[int, Any]


class ProtocolError(Exception):
    """The peer broke RFC 6455; fail the connection with ``code``.

    Attributes:
        code: The close code to send (1002, 1007 or 1009).
        events: What the same read decoded before the error, in order; a
            server still delivers them, then closes.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.events: list[Event] = []


def is_valid_close_code(code: int) -> bool:
    """Whether a peer may send ``code`` in a close frame (section 7.4)."""
    return code in _VALID_CLOSE_CODES or 3000 <= code <= 4999


def unmask(payload: bytes | bytearray | memoryview, mask: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``mask`` repeated (section 5.3).

    Masking and unmasking are the same operation. One XOR of two big integers
    runs in C over the whole payload, which is what makes it fast.
    """
    size = len(payload)
    if not size:
        return b""
    key = (mask * ((size >> 2) + 1))[:size]
    value = int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")
    return value.to_bytes(size, "little")


def parse_close(payload: bytes) -> tuple[int, str]:
    """The code and reason of a close frame's payload (section 5.5.1).

    An empty payload gives 1005, as the RFC says a receiver reports it.

    Raises:
        ProtocolError: 1002 for a 1-byte payload or a code a peer may not
            send, 1007 for a reason that is not UTF-8.
    """
    if not payload:
        return NO_STATUS_RECEIVED, ""
    if len(payload) == 1:
        raise ProtocolError(PROTOCOL_ERROR, "close frame with a 1-byte payload")
    code = int.from_bytes(payload[:2], "big")
    if not is_valid_close_code(code):
        raise ProtocolError(PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        raise ProtocolError(INVALID_PAYLOAD, "close reason is not UTF-8") from None
    return code, reason


def one_small_message(data: bytes, max_message: int) -> str | bytes | None:
    """The message ``data`` holds if it is exactly one small, complete,
    masked data frame with FIN set, which is what a client's read nearly
    always is; None if it is anything else (decode it with a
    :class:`Decoder`). Only valid between messages, on the server side.

    Raises:
        ProtocolError: 1009 over ``max_message``, 1007 for invalid UTF-8.
    """
    size = len(data)
    # data[1] == 0x80 | (size - 6): masked, the length in 7 bits, and
    # nothing after the payload.
    if not 6 <= size <= 131 or data[1] != size + 122:
        return None
    first = data[0]
    if first not in (0x81, 0x82):
        return None
    if size - 6 > max_message:
        raise ProtocolError(MESSAGE_TOO_BIG, "message too big")
    payload = unmask(data[6:], data[2:6])
    if first == 0x82:
        return payload
    try:
        return payload.decode()
    except UnicodeDecodeError:
        raise ProtocolError(INVALID_PAYLOAD, "text message is not UTF-8") from None


class Decoder:
    """Reassembles messages from one side's frames; holds no buffer when idle.

    Args:
        client: True on the client side, which must receive unmasked frames;
            a server requires every frame masked (section 5.1).
        max_message: Largest message, in bytes, counted over its fragments.
            Checked on each frame header, before the payload is buffered.
    """

    __slots__ = (
        "_buffer",
        "_opcode",
        "_parts",
        "_size",
        "_text",
        "client",
        "closed",
        "max_message",
    )

    def __init__(self, *, client: bool = False, max_message: int) -> None:
        self.client = client
        self.max_message = max_message
        # True once a close frame arrived: nothing after it is read.
        self.closed = False
        # Bytes of a frame not yet complete; None between frames.
        self._buffer: bytearray | None = None
        # The fragmented message under way: its opcode (0 for none), the
        # parts so far (text already decoded) and its size in bytes.
        self._opcode = 0
        self._parts: list[Any] | None = None
        self._size = 0
        self._text: codecs.IncrementalDecoder | None = None

    def receive(self, data: bytes) -> list[Event]:
        """Decode ``data``; return ``(kind, value)`` events in order.

        Kinds: ``TEXT`` (str), ``BINARY`` (bytes), ``PING`` and ``PONG``
        (bytes), ``CLOSE`` (a ``(code, reason)`` tuple). Nothing is decoded
        after a close frame.

        Raises:
            ProtocolError: the peer broke the protocol; ``events`` holds what
                came before the error in this read.
        """
        if self.closed:
            return []
        buffer = self._buffer
        if buffer is None and not self._opcode and not self.client:
            message = one_small_message(data, self.max_message)
            if message is not None:
                return [(TEXT if type(message) is str else BINARY, message)]

        if buffer is None:
            view: bytes | bytearray = data
        else:
            buffer += data
            view = buffer
        events: list[Event] = []
        try:
            end = self._decode(view, events)
        except ProtocolError as exc:
            exc.events = events
            self._buffer = None
            self.closed = True
            raise

        # Keep what is left of an incomplete frame for the next read.
        if self.closed or end == len(view):
            self._buffer = None
        elif buffer is None:
            self._buffer = bytearray(view[end:])
        else:
            del buffer[:end]
        return events

    @property
    def is_idle(self) -> bool:
        """Between messages: no partial frame, no fragmented message, not
        closed. An idle decoder holds nothing a new one would not."""
        return self._buffer is None and not self._opcode and not self.closed

    def _decode(self, view: bytes | bytearray, events: list[Event]) -> int:
        """Decode whole frames from ``view``; return where the rest begins."""
        pos = 0
        total = len(view)
        while total - pos >= 2:
            # The header (section 5.2): flags and opcode, then the length in
            # 7 bits, 16 bits or 64 bits, then the mask key if masked.
            first = view[pos]
            second = view[pos + 1]
            fin = first & 0x80
            opcode = first & 0x0F
            length = second & 0x7F
            start = pos + 2
            if length == 126:
                if total - start < 2:
                    break
                length = int.from_bytes(view[start : start + 2], "big")
                start += 2
            elif length == 127:
                if total - start < 8:
                    break
                length = int.from_bytes(view[start : start + 8], "big")
                if length >> 63:
                    raise ProtocolError(PROTOCOL_ERROR, "64-bit length above 2**63")
                start += 8
            self._check_header(first, second, opcode, fin, length)
            if second & 0x80:
                if total - start < 4:
                    break
                mask: bytes | None = bytes(view[start : start + 4])
                start += 4
            else:
                mask = None
            end = start + length
            if end > total:
                break

            # The payload: unmask and hand it to the message assembly.
            payload = bytes(view[start:end])
            if mask is not None:
                payload = unmask(payload, mask)
            pos = end
            self._frame(opcode, fin, payload, events)
            if self.closed:
                break
        return pos

    def _check_header(
        self, first: int, second: int, opcode: int, fin: int, length: int
    ) -> None:
        """Apply the rules a header alone can break, before any payload."""
        if first & 0x70:
            # No extension is negotiated, so the RSV bits must be clear.
            raise ProtocolError(PROTOCOL_ERROR, "reserved bits set")
        if bool(second & 0x80) == self.client:
            if self.client:
                raise ProtocolError(PROTOCOL_ERROR, "masked frame from the server")
            raise ProtocolError(PROTOCOL_ERROR, "unmasked frame from the client")
        if opcode in _CONTROL_OPCODES:
            if not fin:
                raise ProtocolError(PROTOCOL_ERROR, "fragmented control frame")
            if length > MAX_CONTROL_PAYLOAD:
                raise ProtocolError(PROTOCOL_ERROR, "control frame over 125 bytes")
            return
        if opcode == CONTINUATION:
            if not self._opcode:
                raise ProtocolError(PROTOCOL_ERROR, "continuation of no message")
        elif opcode in _DATA_OPCODES:
            if self._opcode:
                raise ProtocolError(
                    PROTOCOL_ERROR, "new message inside a fragmented one"
                )
        else:
            raise ProtocolError(PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
        # Checked per frame, so a huge frame is refused from its header.
        if self._size + length > self.max_message:
            raise ProtocolError(MESSAGE_TOO_BIG, "message too big")

    def _frame(
        self, opcode: int, fin: int, payload: bytes, events: list[Event]
    ) -> None:
        """Turn one valid frame into events, joining fragments."""
        if opcode >= CLOSE:
            if opcode == CLOSE:
                events.append((CLOSE, parse_close(payload)))
                self.closed = True
            else:
                events.append((opcode, payload))
            return

        # An unfragmented message, the common case.
        if fin and opcode:
            if opcode == BINARY:
                events.append((BINARY, payload))
                return
            try:
                events.append((TEXT, payload.decode()))
            except UnicodeDecodeError:
                raise ProtocolError(
                    INVALID_PAYLOAD, "text message is not UTF-8"
                ) from None
            return

        # The first fragment starts the message; text is decoded as it comes
        # so that invalid UTF-8 fails on the fragment that carries it.
        if opcode:
            self._opcode = opcode
            self._parts = []
            self._size = 0
            if opcode == TEXT:
                self._text = codecs.getincrementaldecoder("utf-8")()
        parts = self._parts
        assert parts is not None
        self._size += len(payload)
        text = self._text
        if text is not None:
            try:
                parts.append(text.decode(payload, final=bool(fin)))
            except UnicodeDecodeError:
                raise ProtocolError(
                    INVALID_PAYLOAD, "text message is not UTF-8"
                ) from None
        else:
            parts.append(payload)
        if not fin:
            return

        # The last fragment: deliver the joined message.
        if text is not None:
            events.append((TEXT, "".join(parts)))
        else:
            events.append((BINARY, b"".join(parts)))
        self._opcode = 0
        self._parts = None
        self._size = 0
        self._text = None


# Precomputed first two bytes of unmasked frames with 0-125 byte payloads,
# indexed by opcode then length: a small server frame is one concatenation.
_SMALL_HEADERS = {
    opcode: [bytes((0x80 | opcode, size)) for size in range(126)]
    for opcode in (TEXT, BINARY, CLOSE, PING, PONG)
}
TEXT_HEADERS = _SMALL_HEADERS[TEXT]
BINARY_HEADERS = _SMALL_HEADERS[BINARY]


def _length_bytes(size: int, mask_bit: int) -> bytes:
    if size < 126:
        return bytes((mask_bit | size,))
    if size < 0x10000:
        return bytes((mask_bit | 126,)) + size.to_bytes(2, "big")
    return bytes((mask_bit | 127,)) + size.to_bytes(8, "big")


def encode(
    opcode: int,
    payload: bytes | bytearray | memoryview = b"",
    *,
    fin: bool = True,
    mask: bytes | None = None,
) -> bytes:
    """One frame: header, then ``payload`` masked with ``mask`` if given.

    A client must mask every frame it sends (pass ``mask=new_mask()``); a
    server must not mask.
    """
    size = len(payload)
    if mask is None:
        if fin and size < 126 and opcode in _SMALL_HEADERS:
            return _SMALL_HEADERS[opcode][size] + payload
        return bytes((0x80 * fin | opcode,)) + _length_bytes(size, 0) + payload
    header = bytes((0x80 * fin | opcode,)) + _length_bytes(size, 0x80)
    return header + mask + unmask(payload, mask)


def new_mask() -> bytes:
    """A mask key from a strong source, as section 5.3 requires of clients."""
    return os.urandom(4)


def close_payload(code: int | None = NORMAL_CLOSURE, reason: str = "") -> bytes:
    """The payload of a close frame; ``code=None`` sends none (and no reason).

    Raises:
        ValueError: the code may not be sent, or the reason is over 123 bytes.
    """
    if code is None:
        if reason:
            raise ValueError("a close reason needs a close code")
        return b""
    if not is_valid_close_code(code):
        raise ValueError(f"close code {code} may not be sent (RFC 6455 7.4)")
    encoded = reason.encode()
    if len(encoded) > MAX_CONTROL_PAYLOAD - 2:
        raise ValueError("a close reason is limited to 123 bytes of UTF-8")
    return code.to_bytes(2, "big") + encoded
