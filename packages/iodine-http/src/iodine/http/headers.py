"""Response heads: status lines, the cached Date header, encoded header blocks.

Everything here is on the path of every response, so the expensive parts are
cached: formatting a Date costs about 5 us (``email.utils.formatdate``) and is
done once a second; validating and encoding an application's headers is done
once per distinct ``(status, headers)`` pair, which for most endpoints means
once per process. ``shared/PERFORMANCE.md`` has the measurements (+48 % for the
Date cache, +4 % and +25 % pipelined for the header cache).
"""

from __future__ import annotations

import re
import time
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

# RFC 9110 section 15 names the classes; a code nobody registered still gets a
# line that says what kind of answer it is, never "500".
_CLASS_PHRASES = {
    1: "Informational",
    2: "Success",
    3: "Redirection",
    4: "Client Error",
    5: "Server Error",
}

_status_lines: dict[int, bytes] = {}


class ResponseError(Exception):
    """The application asked for a response HTTP cannot carry."""


def reason_phrase(status: int) -> str:
    """The registered reason phrase of ``status``, or its class's name."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return _CLASS_PHRASES.get(status // 100, "Unknown")


def status_line(status: int) -> bytes:
    """``b"HTTP/1.1 200 OK\\r\\n"``; ResponseError for a code outside 100-999."""
    line = _status_lines.get(status)
    if line is None:
        if type(status) is not int or not 100 <= status <= 999:
            raise ResponseError(f"invalid HTTP status code {status!r}")
        line = f"HTTP/1.1 {status} {reason_phrase(status)}\r\n".encode("latin-1")
        _status_lines[status] = line
    return line


class _DateCache:
    """The ``date`` header line, formatted at most once a second."""

    __slots__ = ("line", "start", "until")

    def __init__(self) -> None:
        self.start = self.until = 0.0
        self.line = b""

    def get(self) -> bytes:
        # Float comparisons: CPython specializes them, and not comparisons
        # of integers as large as the current Unix time.
        now = time.time()
        if now >= self.until or now < self.start:
            second = int(now)
            self.start = float(second)
            self.until = self.start + 1.0
            self.line = f"date: {formatdate(second, usegmt=True)}\r\n".encode("latin-1")
        return self.line


date_line = _DateCache().get
"""The current ``date: ...\\r\\n`` line (RFC 9110 section 6.6.1 wants one)."""


class Head:
    """An application's status and headers, validated and encoded.

    ``block`` is the status line and the application's headers (without the
    blank line that ends a head); ``length`` is its Content-Length, if it gave
    one; ``close`` says it asked for ``Connection: close``. ``sized`` is the
    block with its Content-Length line when a response with this head has a
    body of that length (not a 1xx, 204 or 304) and keeps the connection:
    the common answer, written without deciding its framing again.

    A class with slots rather than a named tuple: CPython specializes reads
    of slots, not of a named tuple's fields, and these are read per response.
    """

    __slots__ = ("block", "close", "length", "sized")

    def __init__(
        self, block: bytes, length: int | None, close: bool, sized: bytes | None = None
    ) -> None:
        self.block = block
        self.length = length
        self.close = close
        self.sized = sized


# Header names are tokens (RFC 9110 section 5.6.2); values may not contain CR,
# LF or NUL, which would let an application's data split the response.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(rb"[\x00\r\n]")

# Framing is the server's job: these application headers are replaced by the
# server's own (Transfer-Encoding, Connection) or are the server's own.
_HOP_BY_HOP = frozenset((b"transfer-encoding", b"connection", b"keep-alive"))

# Enough for every endpoint of a large application; a full cache is emptied
# rather than kept in LRU order, which would cost on every hit.
_HEAD_CACHE_SIZE = 512
_head_cache: dict[Any, Head] = {}


def encode_head(status: int, headers: Any) -> Head:
    """Validate and encode a status and an iterable of ``(name, value)`` pairs.

    Raises:
        ResponseError: bad status, header name or value.
    """
    try:
        key = (status, tuple(headers))
        head = _head_cache.get(key)
    except TypeError:  # lists inside the list: valid, but not hashable
        key, head = None, None
    if head is not None:
        return head
    head = _encode(status, headers)
    if key is not None:
        if len(_head_cache) >= _HEAD_CACHE_SIZE:
            _head_cache.clear()
        _head_cache[key] = head
    return head


def _encode(status: int, headers: Any) -> Head:
    parts = [status_line(status)]
    length: int | None = None
    close = False
    for pair in headers:
        try:
            name, value = pair
        except (TypeError, ValueError):
            raise ResponseError(
                f"a header must be a (name, value) pair: {pair!r}"
            ) from None
        name = _as_bytes(name)
        value = _as_bytes(value)
        if not _TOKEN.fullmatch(name):
            raise ResponseError(f"invalid header name {name!r}")
        if _BAD_VALUE.search(value):
            raise ResponseError(f"invalid value for header {name!r}: {value!r}")
        lower = name.lower()
        if lower == b"content-length":
            if not value.strip().isdigit() or (
                length is not None and int(value) != length
            ):
                raise ResponseError(f"invalid content-length {value!r}")
            # The exchange writes the one Content-Length line itself, next to
            # the framing it decides on (and none for 204/304 answers).
            if length is None:
                length = int(value)
            continue
        elif lower in _HOP_BY_HOP:
            if lower == b"connection" and b"close" in value.lower():
                close = True
            continue
        parts.append(b"%s: %s\r\n" % (name, value.strip()))
    block = b"".join(parts)
    sized = None
    if length is not None and not close and status >= 200 and status not in (204, 304):
        sized = b"%scontent-length: %d\r\n" % (block, length)
    return Head(block, length, close, sized)


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return value.encode("latin-1")
        except UnicodeEncodeError:
            raise ResponseError(f"header text must be latin-1: {value!r}") from None
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise ResponseError(f"header names and values must be bytes, not {value!r}")


def simple_response(
    status: int, server_line: bytes = b"", *, close: bool = True, body: bytes = b""
) -> bytes:
    """A complete small response the server sends on its own (errors, 503)."""
    if not body and status >= 400:
        body = f"{status} {reason_phrase(status)}\n".encode("latin-1")
    return b"".join(
        (
            status_line(status),
            date_line(),
            server_line,
            b"content-type: text/plain; charset=utf-8\r\n" if body else b"",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n" if close else b"\r\n",
            body,
        )
    )
