"""Fixtures: iodine HTTP servers in subprocesses, and raw-socket helpers.

Each server runs ``iodine.listen(service="http", ...)`` + ``iodine.run()`` in
its own Python process on 127.0.0.1, port 0; the process prints the port it
got, and the fixture stops it with SIGTERM (then SIGKILL) afterwards. Servers
with the same application and options are shared within a test module.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent

_SCRIPT = """
import importlib, json, sys
sys.path.insert(0, {here!r})
import iodine
module_name, _, name = {app!r}.partition(":")
app = getattr(importlib.import_module(module_name), name)
listener = iodine.listen(service="http", handler=app, port=0, **json.loads({options!r}))
print(listener.port, flush=True)
iodine.run()
"""

START_TIMEOUT = 15.0


class Server:
    """A running server process and how to talk to it."""

    def __init__(
        self,
        app: str,
        options: dict[str, Any],
        log_path: Path,
        preexec: Callable[[], None] | None = None,
    ) -> None:
        self.log_path = log_path
        script = _SCRIPT.format(here=str(HERE), app=app, options=json.dumps(options))
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script],
            stdout=subprocess.PIPE,
            stderr=self._log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=preexec,  # noqa: PLW1509  # only sets an rlimit
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT)
        line = self.proc.stdout.readline() if ready else b""
        if not line.strip():
            self.stop()
            raise RuntimeError(f"server did not start:\n{self.log()}")
        self.port = int(line)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 5.0) -> str:
        """The log once it contains ``text`` (bounded wait)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()
            if text in log:
                return log
            time.sleep(0.05)
        return self.log()

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def exchange(self, data: bytes, timeout: float = 5.0) -> bytes:
        """Send raw bytes and read until the server closes (or ``timeout``)."""
        with self.connect() as sock:
            sock.sendall(data)
            return read_until_close(sock, timeout)

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self._log.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


def read_until_close(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the peer sends until it closes; stops at ``timeout``."""
    sock.settimeout(timeout)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def read_until(sock: socket.socket, marker: bytes, timeout: float = 2.0) -> bytes:
    """What the peer sends until ``marker`` has arrived; less if it never does.

    Bounded by ``timeout`` overall, so a server that holds data back makes
    the caller's assertion fail instead of hanging.
    """
    data = b""
    deadline = time.monotonic() + timeout
    while marker not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return data


class Response:
    """A response read off a raw socket."""

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]]):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = b""
        self.trailers: list[tuple[str, str]] = []

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class ResponseReader:
    """Reads complete HTTP/1.1 responses, one after another, off a socket."""

    def __init__(self, sock: socket.socket, timeout: float = 5.0) -> None:
        self.sock = sock
        self.buffer = b""
        sock.settimeout(timeout)

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        self.buffer += chunk

    def _line(self) -> bytes:
        for _ in range(10_000):
            end = self.buffer.find(b"\r\n")
            if end >= 0:
                line, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
                return line
            self._more()
        raise AssertionError("no line end")

    def _exactly(self, size: int) -> bytes:
        for _ in range(100_000):
            if len(self.buffer) >= size:
                data, self.buffer = self.buffer[:size], self.buffer[size:]
                return data
            self._more()
        raise AssertionError("body never completed")

    def read(self, head_only: bool = False) -> Response:
        status_line = self._line().decode("latin-1")
        _, code, reason = [*status_line.split(" ", 2), ""][:3]
        headers = []
        for _ in range(1000):
            line = self._line()
            if not line:
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name, value.strip()))
        response = Response(int(code), reason, headers)
        if head_only or response.status in (204, 304) or response.status < 200:
            return response
        length = response.header("content-length")
        if (response.header("transfer-encoding") or "").lower() == "chunked":
            body = b""
            for _ in range(100_000):
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    break
                body += self._exactly(size)
                self._exactly(2)
            for _ in range(1000):
                line = self._line()
                if not line:
                    break
                name, _, value = line.decode("latin-1").partition(":")
                response.trailers.append((name, value.strip()))
            response.body = body
        elif length is not None:
            response.body = self._exactly(int(length))
        else:
            for _ in range(100_000):
                try:
                    self._more()
                except EOFError:
                    break
            response.body, self.buffer = self.buffer, b""
        return response


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Server]]:
    """``servers("module:app", **options)``: a server shared by the module."""
    running: dict[str, Server] = {}
    folder = tmp_path_factory.mktemp("servers")

    def start(app: str, **options: Any) -> Server:
        key = app + json.dumps(options, sort_keys=True)
        server = running.get(key)
        if server is None or server.proc.poll() is not None:
            log = folder / f"server-{len(running)}.log"
            server = running[key] = Server(app, options, log)
        return server

    yield start
    for server in running.values():
        server.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``fresh_server("module:app", **options)``: a server for one test."""
    started: list[Server] = []

    def start(
        app: str, preexec: Callable[[], None] | None = None, **options: Any
    ) -> Server:
        log = tmp_path / f"server-{len(started)}.log"
        server = Server(app, options, log, preexec)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
