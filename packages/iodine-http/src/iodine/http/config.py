"""The options of an HTTP listener, their defaults and why they are what they are.

``iodine.listen(service="http", ...)`` and ``iodine serve`` share these names;
:func:`from_options` turns the keyword arguments of ``listen`` into an
:class:`HttpConfig`, rejecting what it does not know.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

from iodine.http.proxy import TrustedProxies

KIB = 1024
MIB = 1024 * KIB

# permessage-deflate, for connections that negotiate it: a 1 KiB window each
# way and zlib memLevel 4. 9 window bits is the least zlib can compress with;
# 10 keeps most of what a window buys for chat-sized JSON at a sixteenth of
# the 15-bit default's memory. memLevel sets the compressor's hash tables: 8
# (zlib's default) costs 128 KiB per connection, 4 costs 8 KiB for a slightly
# worse ratio. The server and the client share these defaults.
WEBSOCKET_WINDOW_BITS = 10
WEBSOCKET_MEM_LEVEL = 4
# What zlib can compress with: no 8-bit window, memLevel 1 to 9.
WINDOW_BITS_RANGE = (9, 15)
MEM_LEVEL_RANGE = (1, 9)

Interface = Literal["auto", "asgi", "wsgi"]
LifespanMode = Literal["auto", "on", "off"]


# Slots: the limits are read on every request, and CPython does not
# specialize reads of instance attributes that shadow class-level defaults,
# which is what a dataclass without slots has.
@dataclass(slots=True)
class HttpConfig:
    """Settings of one HTTP listener.

    Attributes:
        interface: ``"asgi"``, ``"wsgi"`` or ``"auto"``: a coroutine function
            (or an object whose ``__call__`` is one) is ASGI, anything else
            callable is WSGI.
        lifespan: ASGI lifespan events. ``"auto"`` runs them and carries on
            quietly if the application does not support them; ``"on"`` makes a
            failed start-up stop the server; ``"off"`` never sends them.
        root_path: The mount point of the application (ASGI ``root_path``,
            WSGI ``SCRIPT_NAME``) when a proxy serves it under a prefix.
        max_body: Largest request body in bytes.
        max_header_line: Longest request line or header line in bytes.
        max_headers: Most header fields in one request.
        max_header_bytes: Largest request head (request line and headers).
        header_timeout: Seconds a client has to send a complete request head.
        keep_alive: Seconds an idle keep-alive connection stays open.
        max_connections: Concurrent connections on this listener; None for no
            cap beyond the file-descriptor reserve.
        fd_reserve: File descriptors kept free for the application.
        forwarded_allow_ips: Peers whose proxy headers are believed.
        server_header: Value of a ``Server`` header, or None to send none.
        access_log: Log one line per request to the ``iodine.access`` logger.
        max_message: Largest WebSocket message in bytes, counted over its
            fragments (after decompression, with compression on).
        ping: Seconds of WebSocket silence before a ping, and of SSE silence
            before a ``: ping`` comment; 0 for none.
        websocket_compression: Negotiate permessage-deflate with clients that
            offer it (RFC 7692).
        websocket_window_bits: With compression, the largest LZ77 window
            (9-15: 512 B to 32 KiB) the server compresses with, and the
            client's too when its offer lets the server limit it.
        websocket_mem_level: With compression, zlib's memLevel (1-9) for the
            server's compressor: the size of its hash tables.
    """

    interface: Interface = "auto"
    lifespan: LifespanMode = "auto"
    root_path: str = ""

    # Ruby iodine's default (-maxbd 50). nginx allows 1 MiB, which breaks
    # ordinary photo uploads; 50 MiB still bounds what one request can make the
    # server hold. Over it the client gets 413 Content Too Large: at once when
    # Content-Length says so, or when the chunked body read so far passes it.
    max_body: int = 50 * MIB

    # nginx's large_client_header_buffers and Apache's LimitRequestLine (8190)
    # both stop at 8 KiB. A longer request line gets 414 URI Too Long, a longer
    # header line 431 Request Header Fields Too Large.
    max_header_line: int = 8 * KIB

    # Apache allows 100 fields (LimitRequestFields); browsers send 10-20. Past
    # 128 the client gets 431.
    max_headers: int = 128

    # Ruby iodine's default head limit (-maxhd 32); Node.js allows 16 KiB. A
    # bigger head (line and headers together) gets 431.
    max_header_bytes: int = 32 * KIB

    # Apache's mod_reqtimeout gives 20 s for the first header byte-range; nginx
    # waits 60 s. 20 s is ample for a real client on a slow link and caps how
    # long a slowloris connection holds a slot. The client gets 408 Request
    # Timeout and the connection closes. (uvicorn has no such limit.)
    header_timeout: float = 20.0

    # Ruby iodine's -k default. Long enough to reuse a connection across the
    # clicks of a page visit; an idle connection past it is closed silently, as
    # RFC 9112 section 9.8 allows.
    keep_alive: float = 40.0

    # No fixed cap by default: the file-descriptor reserve below bounds the
    # connections a process can take. With a cap, the client over it gets
    # 503 Service Unavailable and the connection closes.
    max_connections: int | None = None

    # Ruby iodine keeps 64 descriptors spare for the application's own files
    # and database connections; a connection that would eat into them gets 503
    # and is closed instead of starving the application.
    fd_reserve: int = 64

    # Like uvicorn and gunicorn: only a proxy on this machine is believed.
    forwarded_allow_ips: TrustedProxies = field(
        default_factory=lambda: TrustedProxies("127.0.0.1")
    )

    # No Server header by default: it tells attackers what to aim at and
    # clients need none.
    server_header: str | None = None

    # Off by default: logging every request costs more than serving a small
    # one. When on, one common-log-format line per request goes to stderr.
    access_log: bool = False

    # Ruby iodine's -maxms default. Over it the peer gets close 1009 (Message
    # Too Big) as soon as the frame header that crosses the limit arrives.
    # websockets allows 1 MiB and uvicorn 16 MiB; a smaller default bounds what
    # one peer can make the server buffer.
    max_message: int = 256 * KIB

    # Ruby iodine's -ping default, under the 60 s idle timeout of common
    # proxies (nginx's proxy_read_timeout, AWS ALB), so idle WebSockets and
    # event streams survive them. A WebSocket silent for another interval
    # after the ping is closed with 1011.
    ping: float = 40.0

    # Off by default: a connection that negotiates permessage-deflate keeps
    # zlib state and goes through wsproto instead of the hand-written frame
    # path (see docs/websocket.md for the measured cost per connection).
    websocket_compression: bool = False

    # Each compressing connection keeps its zlib state for its whole life:
    # zlib allocates about 300 KiB with its own defaults (15 and 8), and a
    # server holds 28-30 KiB of RSS per connection with ours
    # (docs/websocket.md). Larger values suit a few connections sending
    # large messages.
    websocket_window_bits: int = WEBSOCKET_WINDOW_BITS
    websocket_mem_level: int = WEBSOCKET_MEM_LEVEL

    def validate(self) -> None:
        """Raise ValueError naming the first option that cannot work."""
        if self.interface not in ("auto", "asgi", "wsgi"):
            raise ValueError(
                f"interface must be 'auto', 'asgi' or 'wsgi', not {self.interface!r}"
            )
        if self.lifespan not in ("auto", "on", "off"):
            raise ValueError(
                f"lifespan must be 'auto', 'on' or 'off', not {self.lifespan!r}"
            )
        if not isinstance(self.root_path, str) or self.root_path.endswith("/"):
            raise ValueError(
                f"root_path must be a path without a trailing '/', "
                f"not {self.root_path!r}"
            )
        for name in ("max_body", "max_header_line", "max_headers"):
            _positive_int(name, getattr(self, name))
        _positive_int("max_header_bytes", self.max_header_bytes)
        if self.max_header_bytes < self.max_header_line:
            raise ValueError("max_header_bytes must be at least max_header_line")
        for name in ("header_timeout", "keep_alive"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{name} must be a number of seconds above 0")
        if self.max_connections is not None:
            _positive_int("max_connections", self.max_connections)
        if not isinstance(self.fd_reserve, int) or self.fd_reserve < 0:
            raise ValueError("fd_reserve must be a whole number >= 0")
        _positive_int("max_message", self.max_message)
        if not isinstance(self.ping, int | float) or self.ping < 0:
            raise ValueError("ping must be a number of seconds >= 0 (0: no pings)")
        check_whole_in(
            "websocket_window_bits", self.websocket_window_bits, WINDOW_BITS_RANGE
        )
        check_whole_in("websocket_mem_level", self.websocket_mem_level, MEM_LEVEL_RANGE)
        if self.server_header is not None and (
            not isinstance(self.server_header, str)
            or any(c in self.server_header for c in "\r\n\0")
        ):
            raise ValueError("server_header must be one line of text or None")


def _positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, not {value!r}")


def check_whole_in(name: str, value: object, bounds: tuple[int, int]) -> None:
    """Raise ValueError unless ``value`` is an int within ``bounds`` (inclusive)."""
    low, high = bounds
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not low <= value <= high
    ):
        raise ValueError(
            f"{name} must be a whole number from {low} to {high}, not {value!r}"
        )


_NAMES = frozenset(f.name for f in fields(HttpConfig))


def from_options(options: dict[str, Any]) -> HttpConfig:
    """Build a config from ``listen`` keyword arguments, popping those it uses.

    Raises:
        TypeError: an option is not one of the HTTP service's.
        ValueError: an option has a value that cannot work.
    """
    known = {name: options.pop(name) for name in list(options) if name in _NAMES}
    if options:
        raise TypeError(
            f"unexpected option(s) for an http listener: {', '.join(options)}"
        )
    allow = known.get("forwarded_allow_ips")
    if allow is not None and not isinstance(allow, TrustedProxies):
        known["forwarded_allow_ips"] = TrustedProxies(allow)
    if known.get("max_connections") == 0:
        known["max_connections"] = None
    for name in ("access_log", "websocket_compression"):
        if name in known:
            known[name] = bool(known[name])
    config = HttpConfig(**known)
    config.validate()
    return config
