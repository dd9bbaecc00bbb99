"""Hold many idle keep-alive connections open against a server.

``python -m bench.http.idle_client PORT COUNT SECONDS`` opens COUNT connections
to 127.0.0.1:PORT (at most ``IN_FLIGHT`` handshakes at a time, so the listen
backlog never overflows), makes one GET on each so the server has taken it
through a whole request and holds it as keep-alive, then prints::

    opened=N failed=F alive=A

and waits for a line on stdin (at most ``HOLD`` seconds), checks how many are
still open (``alive_after=A``) and closes them all. Opening gives up after
SECONDS. Plain non-blocking sockets keep the client's own cost and memory
small and predictable.
"""

from __future__ import annotations

import contextlib
import resource
import selectors
import socket
import struct
import sys
import time
from dataclasses import dataclass

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

# Concurrent handshakes. Servers here listen with a backlog of 1024 to 2048;
# staying well below it means no SYN is dropped and retried a second later.
IN_FLIGHT = 256

# SO_LINGER on, with a zero timeout: close() sends a reset.
RESET_ON_CLOSE = struct.pack("ii", 1, 0)

# The longest the client keeps its connections waiting for the parent's word.
HOLD = 120.0


@dataclass
class Pending:
    """A connection on its way to keep-alive."""

    sock: socket.socket
    connected: bool = False
    received: bytes = b""


def raise_open_files_limit(wanted: int) -> None:
    """Lift the soft open-files limit towards ``wanted`` (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def response_complete(data: bytes) -> bool:
    """Whether ``data`` holds a whole response with a Content-Length body."""
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return False
    length = 0
    for line in data[:head_end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return len(data) >= head_end + 4 + length


def open_connections(
    port: int, count: int, seconds: float
) -> tuple[list[socket.socket], int]:
    """Open ``count`` keep-alive connections; return them and the failures."""
    selector = selectors.DefaultSelector()
    opened: list[socket.socket] = []
    failed = started = 0
    deadline = time.monotonic() + seconds
    while len(opened) + failed < count and time.monotonic() < deadline:
        # Keep IN_FLIGHT handshakes going.
        while started < count and len(selector.get_map()) < IN_FLIGHT:
            sock = socket.socket()
            sock.setblocking(False)
            # Closing with a reset leaves no TIME_WAIT behind to eat ports.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
            sock.connect_ex(("127.0.0.1", port))
            selector.register(sock, selectors.EVENT_WRITE, Pending(sock))
            started += 1

        # Move each ready one along: connected -> request sent -> answered.
        for key, _ in selector.select(timeout=0.1):
            pending: Pending = key.data
            sock = pending.sock
            try:
                if not pending.connected:
                    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if error:
                        raise OSError(error, "connect failed")
                    pending.connected = True
                    sock.send(REQUEST)
                    selector.modify(sock, selectors.EVENT_READ, pending)
                    continue
                data = sock.recv(65536)
                if not data:
                    raise OSError("closed by the server")
                pending.received += data
                if response_complete(pending.received):
                    selector.unregister(sock)
                    opened.append(sock)
            except OSError:
                selector.unregister(sock)
                sock.close()
                failed += 1

    # Whatever is still on its way when time is up counts as failed.
    for key in list(selector.get_map().values()):
        selector.unregister(key.fileobj)
        key.data.sock.close()
        failed += 1
    return opened, failed + (count - started)


def count_alive(socks: list[socket.socket]) -> int:
    """How many of ``socks`` the server has not closed."""
    alive = 0
    for sock in socks:
        try:
            if sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b"":
                alive += 1  # unexpected data, but the connection is open
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    return alive


def main() -> None:
    port, count, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    raise_open_files_limit(count + 64)
    socks, failed = open_connections(port, count, seconds)
    try:
        print(f"opened={len(socks)} failed={failed} alive={count_alive(socks)}")
        sys.stdout.flush()

        # Hold them while the parent measures; it writes a line when done.
        waiter = selectors.DefaultSelector()
        waiter.register(sys.stdin, selectors.EVENT_READ)
        if waiter.select(timeout=HOLD):
            sys.stdin.readline()
        print(f"alive_after={count_alive(socks)}")
    finally:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()


if __name__ == "__main__":
    main()
