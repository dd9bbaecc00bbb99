"""The opening handshake (RFC 6455 section 4) as pure functions over headers.

Headers are ``(name, value)`` byte pairs as ASGI carries them; names are
compared without regard to case. The server side validates a request and
builds the ``101`` (or the refusal) as bytes for the HTTP layer to write; the
client side builds the request and checks the server's answer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

Headers = Sequence[tuple[bytes, bytes]]

# Section 1.3: appended to the client's key before hashing.
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# The only version RFC 6455 defines; anything else gets a 426 naming it.
VERSION = b"13"


class HandshakeError(Exception):
    """A handshake that cannot go on.

    On the server side ``response`` holds the bytes to answer with (400, or
    426 for a version other than 13); on the client side it is empty.
    """

    def __init__(self, message: str, response: bytes = b"") -> None:
        super().__init__(message)
        self.response = response


@dataclass(frozen=True)
class Request:
    """A valid WebSocket upgrade request, as the server needs it."""

    key: bytes
    subprotocols: list[str] = field(default_factory=list)
    extensions: list[str] = field(default_factory=list)


def accept_key(key: bytes | str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key``."""
    if isinstance(key, str):
        key = key.encode()
    return base64.b64encode(hashlib.sha1(key.strip() + _GUID).digest()).decode()


def _values(headers: Headers, name: bytes) -> list[bytes]:
    return [value for key, value in headers if key.lower() == name]


def _tokens(headers: Headers, name: bytes) -> list[str]:
    """The comma-separated tokens of every ``name`` header, stripped."""
    tokens: list[str] = []
    for value in _values(headers, name):
        tokens.extend(
            part.strip() for part in value.decode("latin-1").split(",") if part.strip()
        )
    return tokens


def is_upgrade_request(headers: Headers) -> bool:
    """Whether the request asks to switch to WebSocket (``Upgrade: websocket``)."""
    return any(token.lower() == "websocket" for token in _tokens(headers, b"upgrade"))


def check_request(method: str | bytes, headers: Headers) -> Request:
    """Validate a WebSocket opening request (section 4.2.1).

    Raises:
        HandshakeError: with a 400 response for a malformed request, or a 426
            with ``Sec-WebSocket-Version: 13`` for an unsupported version.
    """
    if isinstance(method, bytes):
        method = method.decode("latin-1")
    if method.upper() != "GET":
        raise HandshakeError("a WebSocket handshake must be a GET", bad_request())
    if not is_upgrade_request(headers):
        raise HandshakeError("missing 'Upgrade: websocket'", bad_request())
    connection = [token.lower() for token in _tokens(headers, b"connection")]
    if "upgrade" not in connection:
        raise HandshakeError("missing 'Connection: Upgrade'", bad_request())

    # The version comes before the key: a client of another version learns
    # which one to speak (section 4.4), whatever else it sent.
    versions = _values(headers, b"sec-websocket-version")
    if [version.strip() for version in versions] != [VERSION]:
        raise HandshakeError(
            "unsupported Sec-WebSocket-Version", version_required_response()
        )

    keys = _values(headers, b"sec-websocket-key")
    if len(keys) != 1 or not _is_valid_key(keys[0]):
        raise HandshakeError("invalid Sec-WebSocket-Key", bad_request())
    return Request(
        key=keys[0].strip(),
        subprotocols=_tokens(headers, b"sec-websocket-protocol"),
        extensions=_tokens(headers, b"sec-websocket-extensions"),
    )


def _is_valid_key(key: bytes) -> bool:
    # Section 4.1: the base64 encoding of 16 random bytes.
    try:
        return len(base64.b64decode(key.strip(), validate=True)) == 16
    except binascii.Error:
        return False


def choose_subprotocol(offered: Sequence[str], supported: Iterable[str]) -> str | None:
    """The first of ``supported`` (the server's preference) the client offered."""
    for name in supported:
        if name in offered:
            return name
    return None


def _header_lines(headers: Iterable[tuple[bytes | str, bytes | str]]) -> bytes:
    lines = bytearray()
    for name, value in headers:
        name_b = name.encode("latin-1") if isinstance(name, str) else name
        value_b = value.encode("latin-1") if isinstance(value, str) else value
        # A CR or LF would let a value smuggle in headers of its own.
        if b"\r" in name_b + value_b or b"\n" in name_b + value_b or not name_b:
            raise ValueError(f"invalid header {name_b!r}: {value_b!r}")
        lines += name_b + b": " + value_b + b"\r\n"
    return bytes(lines)


def accept_response(
    key: bytes | str,
    subprotocol: str | None = None,
    headers: Iterable[tuple[bytes | str, bytes | str]] = (),
) -> bytes:
    """The whole ``101 Switching Protocols`` head (section 4.2.2).

    Args:
        key: The request's ``Sec-WebSocket-Key``.
        subprotocol: The chosen subprotocol, which must be one the client
            offered (see :func:`choose_subprotocol`), or None.
        headers: Extra headers (cookies, for instance).

    Raises:
        ValueError: a header name or value holds CR or LF.
    """
    head = (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"upgrade: websocket\r\n"
        b"connection: Upgrade\r\n"
        b"sec-websocket-accept: " + accept_key(key).encode() + b"\r\n"
    )
    if subprotocol:
        head += _header_lines([(b"sec-websocket-protocol", subprotocol)])
    return head + _header_lines(headers) + b"\r\n"


def _refusal(status: bytes, extra: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\n" + extra + b"content-type: text/plain\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: close\r\n\r\n" + body
    )


def version_required_response() -> bytes:
    """``426 Upgrade Required`` naming version 13 (section 4.4)."""
    return _refusal(
        b"426 Upgrade Required",
        b"sec-websocket-version: 13\r\nupgrade: websocket\r\n",
        b"Unsupported WebSocket version; this server speaks version 13.\n",
    )


def bad_request() -> bytes:
    """``400 Bad Request`` for a malformed handshake (section 4.2.1)."""
    return _refusal(b"400 Bad Request", b"", b"Invalid WebSocket handshake.\n")


# ------------------------------------------------------------------ client side


def new_key() -> bytes:
    """A fresh ``Sec-WebSocket-Key``: 16 random bytes, base64 (section 4.1)."""
    return base64.b64encode(os.urandom(16))


def client_request(
    host: str,
    target: str,
    key: bytes,
    subprotocols: Sequence[str] = (),
    headers: Iterable[tuple[bytes | str, bytes | str]] = (),
) -> bytes:
    """The opening request of a client (section 4.1).

    Raises:
        ValueError: a header holds CR or LF.
    """
    lines = [
        (b"host", host.encode("idna") if not host.isascii() else host.encode()),
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-key", key),
        (b"sec-websocket-version", VERSION),
    ]
    if subprotocols:
        lines.append((b"sec-websocket-protocol", ", ".join(subprotocols).encode()))
    start = b"GET " + target.encode() + b" HTTP/1.1\r\n"
    return start + _header_lines([*lines, *headers]) + b"\r\n"


@dataclass(frozen=True)
class Response:
    """A server's ``101`` answer, accepted."""

    subprotocol: str | None
    headers: list[tuple[bytes, bytes]]
    # Its Sec-WebSocket-Extensions entries (only ever one we offered).
    extensions: list[str] = field(default_factory=list)


def parse_response_head(head: bytes) -> tuple[int, list[tuple[bytes, bytes]]]:
    """Status code and headers (names lower-cased) of an HTTP/1.1 response head.

    Raises:
        HandshakeError: the head is not HTTP.
    """
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise HandshakeError(f"not an HTTP response: {lines[0][:80]!r}")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            raise HandshakeError(f"malformed response header {line[:80]!r}")
        headers.append((name.strip().lower(), value.strip()))
    return int(parts[1]), headers


def check_response(
    head: bytes,
    key: bytes,
    subprotocols: Sequence[str] = (),
    *,
    extensions_offered: bool = False,
) -> Response:
    """Check a server's answer to our request (section 4.1, the client's list).

    Args:
        head: The response head up to, not including, the blank line.
        key: The ``Sec-WebSocket-Key`` we sent.
        subprotocols: The subprotocols we offered.
        extensions_offered: We offered an extension; the caller checks what
            the server chose of it (``Response.extensions``).

    Raises:
        HandshakeError: any status but 101, or a missing or wrong header.
    """
    status, headers = parse_response_head(head)
    if status != 101:
        raise HandshakeError(f"the server answered {status} instead of 101")
    if not is_upgrade_request(headers):
        raise HandshakeError("the 101 response lacks 'Upgrade: websocket'")
    if "upgrade" not in [token.lower() for token in _tokens(headers, b"connection")]:
        raise HandshakeError("the 101 response lacks 'Connection: Upgrade'")
    if _values(headers, b"sec-websocket-accept") != [accept_key(key).encode()]:
        raise HandshakeError("wrong Sec-WebSocket-Accept in the 101 response")
    extensions = _tokens(headers, b"sec-websocket-extensions")
    if extensions and not extensions_offered:
        raise HandshakeError("the server chose an extension we did not offer")
    chosen = _tokens(headers, b"sec-websocket-protocol")
    if len(chosen) > 1 or (chosen and chosen[0] not in subprotocols):
        raise HandshakeError(
            f"the server chose a subprotocol we did not offer: {chosen}"
        )
    return Response(chosen[0] if chosen else None, headers, extensions)
