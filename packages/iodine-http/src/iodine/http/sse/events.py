"""The text/event-stream format (HTML Living Standard, "Server-sent events").

An event is a block of ``field: value`` lines ended by a blank line. Data
holding line breaks becomes one ``data:`` line per line, which the browser
joins back with ``\\n``; the standard accepts CRLF, LF and CR as line ends, so
all three split.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_LINE_BREAK = re.compile(rb"\r\n|\r|\n")

# Sent on an idle stream: a comment line, which EventSource ignores, keeps
# proxies and the browser from timing the stream out.
PING_COMMENT = b": ping\n\n"


def _data_lines(data: bytes | str) -> bytes:
    if isinstance(data, str):
        data = data.encode()
    # find, not "in" (see asgi.decode_path): this runs for every event.
    if data.find(b"\n") < 0 and data.find(b"\r") < 0:
        return b"data: " + data + b"\n"
    return b"".join(b"data: " + line + b"\n" for line in _LINE_BREAK.split(data))


def _field(name: bytes, value: str) -> bytes:
    # A line break would end the field early and start another one.
    if "\n" in value or "\r" in value:
        raise ValueError(f"an event's {name.decode()} cannot hold a line break")
    return name + b": " + value.encode() + b"\n"


def format_event(
    data: bytes | str,
    *,
    id: str | None = None,  # the standard's field name
    event: str | None = None,
    retry: int | None = None,
) -> bytes:
    """One complete event, ready to write.

    Args:
        data: The message; each line becomes a ``data:`` line.
        id: The event id, which the browser sends back in ``Last-Event-ID``
            when it reconnects.
        event: The event type (``addEventListener`` name); default "message".
        retry: Milliseconds the browser waits before reconnecting.

    Raises:
        ValueError: ``id`` or ``event`` holds a line break, ``id`` holds NUL,
            or ``retry`` is negative.
    """
    head = b""
    if id is not None:
        if "\0" in id:
            raise ValueError("an event id cannot hold NUL (browsers ignore it)")
        head += _field(b"id", id)
    if event is not None:
        head += _field(b"event", event)
    if retry is not None:
        if retry < 0:
            raise ValueError("retry cannot be negative")
        head += b"retry: %d\n" % retry
    return head + _data_lines(data) + b"\n"


def format_data(data: bytes | str) -> bytes:
    """A plain ``message`` event carrying ``data``."""
    return _data_lines(data) + b"\n"


def is_event_stream_request(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether a request asks for an event stream: its ``Accept`` names
    ``text/event-stream`` among others (not only as the exact value)."""
    for name, value in headers:
        if name.lower() == b"accept" and b"text/event-stream" in value.lower():
            return True
    return False


def last_event_id(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The ``Last-Event-ID`` a reconnecting EventSource sends, if any."""
    for name, value in headers:
        if name.lower() == b"last-event-id":
            return value.decode("utf-8", "replace")
    return None


def response_head(headers: Iterable[tuple[bytes | str, bytes | str]] = ()) -> bytes:
    """The ``200 text/event-stream`` head that starts a stream.

    The body has no length and is not chunked: it ends when the connection
    closes, which ``Connection: close`` announces, so every write goes out
    as it is, without chunk framing. ``Cache-Control: no-cache`` is what the
    standard recommends; ``X-Accel-Buffering: no`` stops nginx from holding
    events back in its proxy buffer.

    Raises:
        ValueError: a header name or value holds CR or LF.
    """
    extra = bytearray()
    for name, value in headers:
        name_b = name.encode("latin-1") if isinstance(name, str) else name
        value_b = value.encode("latin-1") if isinstance(value, str) else value
        if any(c in name_b + value_b for c in (b"\r", b"\n")) or not name_b:
            raise ValueError(f"invalid header {name_b!r}: {value_b!r}")
        extra += name_b + b": " + value_b + b"\r\n"
    return (
        b"HTTP/1.1 200 OK\r\n"
        b"content-type: text/event-stream; charset=utf-8\r\n"
        b"cache-control: no-cache\r\n"
        b"x-accel-buffering: no\r\n"
        b"connection: close\r\n" + bytes(extra) + b"\r\n"
    )
