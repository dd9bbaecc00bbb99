"""WSGI (PEP 3333) over an HTTP/1.1 exchange, on iodine's thread pool.

The application runs on a pool thread; the connection stays on the loop. The
two meet in an :class:`WsgiExchange`:

* the request body flows loop -> thread under the exchange's lock, piece by
  piece as it arrives (``wsgi.input`` never needs the whole body in memory, and
  reading pauses when the application falls 256 KiB behind); a request without
  a body gets one shared empty ``wsgi.input``;
* the response flows thread -> loop through ``HttpServer.post_from_thread``,
  one call per piece the application yields, so an iterable is sent as it is
  produced. A list or tuple (the common ``[b"..."]``) is joined and sent in
  one call, with its Content-Length, as one ``transport.write``;
* the thread waits while more than :data:`MAX_IN_FLIGHT` bytes it produced
  are not yet written, or while the transport's buffer is full, so a large
  response cannot pile up in memory. The last piece never waits.

``close()`` of the application's iterable is always called, also when the
client went away or the application failed halfway.

A request that can leave HTTP (a WebSocket handshake, an event stream, another
``Upgrade``) may be taken over by the application instead, iodine's Rack
upgrade in WSGI terms: ``environ["iodine.upgrade?"]`` names the kind
(``"websocket"`` or ``"sse"``; absent for other protocols), and the
application takes the connection by putting a native handler in
``environ["iodine.upgrade"]`` (``environ["iodine.upgrade.tcp"]`` for another
protocol) before it returns. The headers it gave ``start_response`` go into
the switch's answer; its status and body are ignored. Other requests pay a
look at ``exchange.upgrade`` for this, and one per piece of a streamed body.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from _thread import LockType, allocate_lock
from collections import deque
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from iodine.core.handlers import check_handler
from iodine.http import upgrade
from iodine.http.asgi import ClientDisconnected
from iodine.http.exchange import DONE, Exchange
from iodine.http.headers import ResponseError
from iodine.http.proxy import forwarded_client

if TYPE_CHECKING:
    from iodine.http.protocol import HttpProtocol

logger = logging.getLogger("iodine.http")

# Request body bytes held for an application that reads slowly. uvloop reads
# up to 256,000 bytes at a time, so a single read never pauses reading on its
# own: with a mark of 64 KiB every read of a large upload paused the socket
# and woke the loop again to resume it: about a quarter of the upload's CPU.
_HIGH_WATER = 256 * 1024

# Response bytes a thread may have handed to the loop but not yet written.
MAX_IN_FLIGHT = 256 * 1024

# How long a waiting thread sleeps before it looks again, in case a wake-up
# raced with the flag it waits on (the loop sets write_paused without a lock).
_RECHECK_SECONDS = 0.5

# Where the application puts the native handler, by request kind: a
# WebSocket or an event stream, or any other protocol (a raw connection).
UPGRADE_KEY = "iodine.upgrade"
UPGRADE_TCP_KEY = "iodine.upgrade.tcp"

_PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}

_NO_START_RESPONSE = "the WSGI application did not call start_response"

# Status lines seen, and their codes (see _status_code).
_STATUS_CODES: dict[str, int] = {}

# The responses joined and sent in one piece. A prebuilt tuple: writing
# ``list | tuple`` in the isinstance call builds a union on every request.
_SEQUENCES = (list, tuple)

_ENVIRON_KEYS: dict[bytes, str] = {
    b"content-type": "CONTENT_TYPE",
    b"content-length": "CONTENT_LENGTH",
}


def connection_environ(protocol: HttpProtocol) -> dict[str, Any]:
    """The part of every request's environ that is fixed for a connection."""
    server = protocol.server
    host, port = protocol.server_address or ("localhost", 0)
    client = protocol.client
    return {
        "SCRIPT_NAME": server.config.root_path,
        "SERVER_NAME": host,
        "SERVER_PORT": str(port),
        "REMOTE_ADDR": client[0] if client else "",
        "REMOTE_PORT": str(client[1]) if client else "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": protocol.scheme,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": FileWrapper,
    }


class FileWrapper:
    """``wsgi.file_wrapper``: a file sent in blocks, closed when done."""

    def __init__(self, filelike: IO[bytes], blksize: int = 64 * 1024) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while True:
            block = read(self.blksize)
            if not block:
                return
            yield block

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


class EmptyBody:
    """``wsgi.input`` of a request that has no body, shared by all of them:
    it keeps no state, so there is nothing one request could leave behind."""

    __slots__ = ()

    def read(self, size: int | None = -1) -> bytes:
        return b""

    def readline(self, size: int | None = -1) -> bytes:
        return b""

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return []

    def __iter__(self) -> Iterator[bytes]:
        return iter(())


NO_BODY = EmptyBody()


class RequestBody:
    """``wsgi.input``: the request body, read as it arrives.

    The pieces the loop received are held as they are, with an offset into
    the first, instead of being appended to one growing buffer: a read then
    copies each byte at most once, and none when it takes a whole piece.
    For a large upload that was most of the WSGI thread's time.
    """

    def __init__(self, exchange: WsgiExchange) -> None:
        self._exchange = exchange
        self._pieces: deque[bytes] = deque()
        self._offset = 0  # bytes of the first piece already read
        self._held = 0  # bytes held and not yet read
        self._eof = False

    def _fill(self) -> bool:
        """Take the pieces received since the last call (waiting for one);
        False at the end of the body."""
        if self._eof:
            return False
        pieces = self._exchange.pull()
        if not pieces:
            self._eof = True
            return False
        self._pieces.extend(pieces)
        self._held += sum(map(len, pieces))
        return True

    def _take(self, size: int) -> bytes:
        """Remove and return the first ``size`` held bytes (0 < size <= held)."""
        pieces = self._pieces
        first = pieces[0]
        offset = self._offset
        self._held -= size
        end = offset + size
        if end <= len(first):
            if end == len(first):
                pieces.popleft()
                self._offset = 0
                if offset == 0:
                    return first  # a whole piece: no copy at all
            else:
                self._offset = end
            return first[offset:end]
        parts: list[bytes | memoryview] = []
        while size:
            first = pieces[0]
            available = len(first) - offset
            if available <= size:
                parts.append(memoryview(first)[offset:] if offset else first)
                pieces.popleft()
                offset = 0
                size -= available
            else:
                parts.append(memoryview(first)[offset : offset + size])
                offset += size
                size = 0
        self._offset = offset
        return b"".join(parts)

    def _newline_end(self, start: int) -> int:
        """Where the first line ending at or after held byte ``start`` ends
        (just past its "\\n"), or -1 if the held bytes have none."""
        position = -self._offset  # where the current piece starts
        for piece in self._pieces:
            end = position + len(piece)
            if end > start:
                found = piece.find(b"\n", max(start - position, 0))
                if found >= 0:
                    return position + found + 1
            position = end
        return -1

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            while self._fill():
                pass
            size = self._held
        else:
            while self._held < size and self._fill():
                pass
            size = min(size, self._held)
        return self._take(size) if size else b""

    def readline(self, size: int | None = -1) -> bytes:
        limit = -1 if size is None else size
        searched = 0
        while True:
            end = self._newline_end(searched)
            if end >= 0:
                break
            searched = self._held
            if 0 <= limit <= self._held or not self._fill():
                end = self._held
                break
        if 0 <= limit < end:
            end = limit
        return self._take(end) if end else b""

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line


class WsgiExchange(Exchange):
    """One request served by a WSGI application on a pool thread.

    The loop and the pool thread share a little state (the body received
    and not yet read, the response bytes posted and not yet written, whether
    the client is gone) under ``_lock``. A thread that must wait for the loop
    sleeps on a lock of its own (``_waiter``) that the loop releases. This is
    a condition variable with one waiter, without ``threading.Condition``'s
    cost, which would be paid on every request: most requests never wait.
    """

    __slots__ = (
        "_body",
        "_continue_asked",
        "_disconnected",
        "_head_sent",
        "_in_flight",
        "_lock",
        "_queued",
        "_response_headers",
        "_response_status",
        "_waiter",
    )

    def _init_interface(self) -> None:
        self._lock: LockType | None = None
        self._waiter: LockType | None = None
        self._body: list[bytes] | None = None
        self._queued = 0
        self._continue_asked = False
        self._disconnected = False
        self._in_flight = 0
        self._head_sent = False
        self._response_status: int | None = None
        self._response_headers: Any = None

    # ------------------------------------------------- loop thread side

    def run(self) -> None:
        if self.upgrade == upgrade.WEBSOCKET:
            self.handshake = upgrade.check_websocket(self)
            if self.handshake is None:
                return  # refused (400 or 426); the application never runs
        if self._lock is None:
            self._lock = allocate_lock()
        # A fresh context per request: pool threads are reused, and one
        # request's context variables must not leak into the next.
        self.protocol.server.reactor.pool.queue(contextvars.Context().run, self._serve)

    def feed_body(self, data: bytes) -> None:
        if self.state == DONE or self._disconnected:
            return
        # Made here when the body comes before run() (a pipelined request
        # waiting its turn); the thread only starts after run(), so the lock
        # always exists by the time it looks.
        lock = self._lock
        if lock is None:
            lock = self._lock = allocate_lock()
        with lock:
            if self._body is None:
                self._body = [data]
            else:
                self._body.append(data)
            self._queued += len(data)
            queued = self._queued
            self._wake()
        if queued > _HIGH_WATER:
            self.protocol.pause_body()

    def end_body(self) -> None:
        self._wake_locked()

    def lost(self) -> None:
        self._disconnected = True
        self._wake_locked()

    def writing_resumed(self) -> None:
        self._wake_locked()

    def _wake_locked(self) -> None:
        lock = self._lock
        if lock is None:
            return  # no thread has started, so none is waiting
        with lock:
            self._wake()

    def _wake(self) -> None:
        """Wake the thread if it sleeps. The caller holds ``_lock``."""
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.release()

    def _deliver(self, head: tuple[int, Any] | None, data: bytes, more: bool) -> None:
        if more:
            # Only pieces with more to follow are counted in flight: after the
            # last one the thread never waits again.
            assert self._lock is not None
            with self._lock:
                self._in_flight -= len(data)
                self._wake()
        if self.state == DONE or self.protocol.is_closed:
            return
        if head is not None:
            try:
                self.start_response(*head)
            except ResponseError as exc:
                self._invalid_response(exc)
                return
        self.send_body(data, more)

    def _deliver_whole(self, status: int, headers: Any, body: bytes) -> None:
        """The whole response in one piece (a list or tuple body), the common
        case: written with its head in one step when the head frames it."""
        if self.state == DONE or self.protocol.is_closed:
            return
        try:
            self.start_response(status, headers)
        except ResponseError as exc:
            self._invalid_response(exc)
            return
        if self._write_sized(body):
            self.finish()
        else:
            self.send_body(body, False)

    def _invalid_response(self, exc: ResponseError) -> None:
        logger.error(
            "The WSGI application gave an invalid response to %s %s: %s",
            self.method,
            self.target.decode("latin-1"),
            exc,
        )
        self._stop_thread()
        self.fail()

    def _failed(self) -> None:
        if self.state != DONE:
            self.fail()

    def _switch(self, handler: object, headers: Any, environ: dict[str, Any]) -> None:
        """Hand the connection to ``handler`` (the application took the
        upgrade), or answer 500 if its headers cannot go in the answer."""
        if self.state == DONE or self._disconnected or self.protocol.is_closed:
            return
        try:
            upgrade.switch(self, handler, headers=headers, scope=environ)
            # The body reader holds this exchange, and through it the HTTP
            # protocol that let go of the transport: the environ, kept for
            # the connection's life as ``conn.env``, must not keep them.
            environ.pop("wsgi.input", None)
        except (ValueError, TypeError, ResponseError) as exc:
            logger.error(
                "The WSGI application gave invalid headers for the upgrade of "
                "%s %s (%s); answering 500.",
                self.method,
                self.target.decode("latin-1"),
                exc,
            )
            self.fail()
        except RuntimeError as exc:
            # The connection went away between the thread's post and now.
            logger.debug(
                "Upgrade of %s %s abandoned: %s",
                self.method,
                self.target.decode("latin-1"),
                exc,
            )
            self.fail()

    def _stop_thread(self) -> None:
        # Makes the thread's next write raise, so it stops producing.
        self._disconnected = True
        self._wake_locked()

    # ------------------------------------------------ pool thread side

    def _sleep(self) -> None:
        """Wait until the loop calls ``_wake`` (or a recheck is due).

        Called with ``_lock`` held, and returns with it held again.
        """
        lock = self._lock
        assert lock is not None
        waiter = allocate_lock()
        waiter.acquire()
        self._waiter = waiter
        lock.release()
        try:
            waiter.acquire(True, _RECHECK_SECONDS)
        finally:
            lock.acquire()
            # Woken, the loop has cleared it already; timed out, it is ours
            # to clear (the loop can no longer release it after this).
            self._waiter = None

    def pull(self) -> list[bytes]:
        """The body pieces received since the last pull (waiting for one);
        an empty list at the end of the body."""
        lock = self._lock
        assert lock is not None
        with lock:
            while not self._body and not self.body_done:
                if self._disconnected:
                    raise ClientDisconnected("the client closed the connection")
                if self.expect_continue and not self._continue_asked:
                    # continue_sent belongs to the loop, which sets it when
                    # it writes the interim response.
                    self._continue_asked = True
                    self._post(self.protocol.send_continue, self)
                self._sleep()
            body = self._body
            if not body:
                return []
            # The loop starts a new list with its next piece.
            self._body = None
            queued, self._queued = self._queued, 0
        if queued > _HIGH_WATER:
            self._post(self.protocol.resume_body)
        return body

    def _post(self, fn: Callable[..., object], *args: object) -> None:
        self.protocol.server.post_from_thread(fn, *args)

    def _serve(self) -> None:
        """Call the application and hand its response to the loop.

        For a request that may leave HTTP the application may instead take
        the connection for a native handler: when it returns, or, as a
        generator, before it yields its first bytes. Either way nothing has
        been sent yet, and the body is closed unsent.
        """
        kind = self.upgrade
        try:
            environ = self._environ()
            if kind is not None and kind != upgrade.RAW:
                environ["iodine.upgrade?"] = kind
            result = self.protocol.server.app(environ, self._start_response)
        except ClientDisconnected:
            return
        except Exception:
            self._log_failure()
            self._post(self._failed)
            return
        try:
            taken = None if kind is None else _taken(environ)
            if taken is None:
                if isinstance(result, _SEQUENCES) and not self._head_sent:
                    # Nothing to wait for or to count in flight: _emit's
                    # work, less what only a streamed piece needs.
                    body = b"".join(result)
                    status = self._response_status
                    if status is None:
                        raise RuntimeError(_NO_START_RESPONSE)
                    self._head_sent = True
                    self.protocol.server.post_from_thread(
                        self._deliver_whole, status, self._response_headers, body
                    )
                else:
                    for piece in result:
                        if piece:
                            if kind is not None and not self._head_sent:
                                taken = _taken(environ)
                                if taken is not None:
                                    break
                            self._emit(piece, True)
                    else:
                        taken = None if kind is None else _taken(environ)
                    if taken is None:
                        self._emit(b"", False)
            if taken is not None:
                self._take(environ, *taken)
        except ClientDisconnected:
            pass
        except Exception:
            self._log_failure()
            self._post(self._failed)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    self._log_failure()

    def _take(self, environ: dict[str, Any], key: str, handler: object) -> None:
        """Switch to ``handler``, unless it cannot be: then an error is logged
        and the request answered 500 (or, with part of a body out, closed)."""
        target = self.target.decode("latin-1")
        if self._head_sent:
            logger.error(
                "The WSGI application set %s for %s %s after it sent part of "
                "its response; closing the connection.",
                key,
                self.method,
                target,
            )
            self._post(self._failed)
            return
        expected = UPGRADE_TCP_KEY if self.upgrade == upgrade.RAW else UPGRADE_KEY
        if key != expected:
            logger.error(
                "The WSGI application set %s for %s %s, a %s request, which "
                "takes %s; answering 500.",
                key,
                self.method,
                target,
                self.upgrade,
                expected,
            )
            self._post(self._failed)
            return
        try:
            # Checked here, before anything is written: a handler refused
            # after the switch would leave a connection nobody serves.
            check_handler(handler)
        except TypeError as exc:
            logger.error(
                "The WSGI application set an invalid %s for %s %s (%s); answering 500.",
                key,
                self.method,
                target,
                exc,
            )
            self._post(self._failed)
            return
        self._post(self._switch, handler, self._response_headers, environ)

    def _start_response(
        self, status: str, headers: Any, exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self._head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self._response_status is not None:
            raise RuntimeError("start_response called twice without exc_info")
        try:
            code = _STATUS_CODES.get(status)
        except TypeError:  # not even hashable; _status_code says what is wrong
            code = None
        if code is None:
            code = _status_code(status)
        self._response_status = code
        self._response_headers = headers
        return self._write

    def _write(self, data: bytes) -> None:
        """The ``write()`` callable of PEP 3333 (for old applications)."""
        if data:
            self._emit(data, True)

    def _emit(self, data: bytes, more: bool) -> None:
        status = self._response_status
        if status is None:
            raise RuntimeError(_NO_START_RESPONSE)
        if more:
            # Wait while the loop holds too much of this response unwritten.
            # The last piece never waits: the application holds it already,
            # and nothing comes after it to hold back.
            lock = self._lock
            assert lock is not None
            protocol = self.protocol
            with lock:
                while (
                    self._in_flight > MAX_IN_FLIGHT or protocol.write_paused
                ) and not self._disconnected:
                    self._sleep()
                if self._disconnected:
                    raise ClientDisconnected("the client closed the connection")
                self._in_flight += len(data)
        head = None
        if not self._head_sent:
            self._head_sent = True
            head = (status, self._response_headers)
        self.protocol.server.post_from_thread(self._deliver, head, data, more)

    def _log_failure(self) -> None:
        logger.error(
            "Exception in the WSGI application for %s %s:",
            self.method,
            self.target.decode("latin-1"),
            exc_info=True,
        )

    def _environ(self) -> dict[str, Any]:
        protocol = self.protocol
        environ = protocol.template.copy()
        environ["REQUEST_METHOD"] = self.method
        raw_path = self.raw_path
        path = (
            unquote_to_bytes(raw_path).decode("latin-1")
            if raw_path.find(b"%") >= 0  # not "in": see asgi.decode_path
            else raw_path.decode("latin-1")
        )
        root_path = protocol.server.config.root_path
        if root_path and path.startswith(root_path):
            rest = path[len(root_path) :]
            if not rest or rest[0] == "/":
                path = rest
        environ["PATH_INFO"] = path
        environ["QUERY_STRING"] = self.query.decode("latin-1")
        environ["SERVER_PROTOCOL"] = _PROTOCOLS[self.http_version]
        environ["wsgi.input"] = (
            NO_BODY if self.body_done and self._body is None else RequestBody(self)
        )
        if self.forwarded and protocol.proxy_trusted:
            client, scheme = forwarded_client(
                self.headers,
                protocol.server.config.forwarded_allow_ips,
                self.client,
                self.scheme,
            )
            self.client, self.scheme = client, scheme
            environ["wsgi.url_scheme"] = scheme
            if client is not None:
                environ["REMOTE_ADDR"] = client[0]
                environ["REMOTE_PORT"] = str(client[1])
        keys = _ENVIRON_KEYS
        for name, raw_value in self.headers:
            key = keys.get(name)
            if key is None:
                if b"_" in name:
                    # "x_user" and "x-user" would both become HTTP_X_USER; a
                    # client could then override what a proxy set. Dropped,
                    # as nginx and gunicorn do.
                    continue
                key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
                if len(keys) < 1024:
                    keys[name] = key
            value = raw_value.decode("latin-1")
            if key in environ:
                separator = "; " if key == "HTTP_COOKIE" else ","
                value = environ[key] + separator + value
            environ[key] = value
        return environ


def _status_code(status: str) -> int:
    """The code of a WSGI status line ("200 OK"), remembered for the next
    response with the same line (applications use a handful of them)."""
    try:
        code = int(status.split(" ", 1)[0])
    except (AttributeError, ValueError, TypeError):
        raise ResponseError(f"invalid WSGI status {status!r}") from None
    if len(_STATUS_CODES) < 256:
        _STATUS_CODES[status] = code
    return code


def _taken(environ: dict[str, Any]) -> tuple[str, object] | None:
    """The upgrade key the application set and its handler, if it set one."""
    handler = environ.get(UPGRADE_KEY)
    if handler is not None:
        return UPGRADE_KEY, handler
    handler = environ.get(UPGRADE_TCP_KEY)
    if handler is not None:
        return UPGRADE_TCP_KEY, handler
    return None
