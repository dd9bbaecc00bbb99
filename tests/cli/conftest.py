"""Running the real ``iodine`` command in subprocesses, with bounded waits.

Every server a test starts is registered with the ``serve`` fixture, which kills
whatever is still running at teardown, so a failing test never leaves a process
holding a port.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# The console script sits next to the interpreter in a venv (nox's, .venv).
_SCRIPT = Path(sys.executable).with_name("iodine")
IODINE = str(_SCRIPT) if _SCRIPT.exists() else (shutil.which("iodine") or "iodine")

# Environment variables the command reads; a developer's or CI's own values
# must not leak into the tests.
COMMAND_ENV = (
    "PORT",
    "THREADS",
    "WEB_CONCURRENCY",
    "WORKERS",
    "IODINE_REDIS_URL",
    "FORWARDED_ALLOW_IPS",
)

HAS_HTTP = importlib.util.find_spec("iodine.http") is not None
needs_http = pytest.mark.skipif(
    not HAS_HTTP,
    reason="serving needs iodine-http, and find_spec('iodine.http') is None",
)

ASGI_APP = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rpartition(".")[2]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    size = 0
    more = True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = f"asgi {scope['method']} {scope['path']} {size}".encode()
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/plain")],
    })
    await send({"type": "http.response.body", "body": body})
"""

# Named `application`, so serving the bare file also checks the fallback name.
WSGI_APP = """
def application(environ, start_response):
    body = f"wsgi {environ['REQUEST_METHOD']} {environ['PATH_INFO']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
"""


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in COMMAND_ENV}
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_app(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return self.stderr.strip().splitlines()


def run_iodine(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> Result:
    """Run ``iodine ARGS`` to completion (it must not start serving)."""
    done = subprocess.run(
        [IODINE, *args],
        cwd=cwd,
        env=clean_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


@dataclass
class Server:
    """A running ``iodine serve``; its log goes to a file, never a full pipe."""

    process: subprocess.Popen[bytes]
    port: int | None
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM, then the exit code once it has stopped."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


StartServer = Callable[..., Server]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[StartServer]:
    """``serve(*args, port=..., cwd=..., env=...)`` starts ``iodine serve``.

    ``-p`` is not added: tests pass the port the way they mean to test it, and
    ``port`` only says where to wait for the listener (None for a Unix socket).
    The server is ready once it accepts connections and has logged ``ready``
    (the command logs it when the reactor runs, by which time SIGTERM is
    handled); ``ready=None`` waits for the port alone, for quiet runs.
    """
    servers: list[Server] = []

    def start(
        *args: str,
        port: int | None,
        cwd: Path = tmp_path,
        env: dict[str, str] | None = None,
        ready: str | None = "Serving ",
    ) -> Server:
        log = tmp_path / f"server-{len(servers)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [IODINE, "serve", *args],
                cwd=cwd,
                env=clean_env() if env is None else env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        server = Server(process, port, log)
        servers.append(server)
        _wait_ready(server, ready)
        return server

    yield start

    for server in servers:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(10)


@pytest.fixture
def isolated_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo what loading an app in-process does to sys.path and sys.modules."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]


def _wait_ready(server: Server, ready: str | None, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(
                f"iodine exited with {server.process.returncode} before it was "
                f"ready:\n{server.output()}"
            )
        logged = ready is None or ready in server.output()
        if logged and (server.port is None or _accepts(server.port)):
            return
        time.sleep(0.05)
    raise AssertionError(f"iodine was not ready within {timeout} s:\n{server.output()}")


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True
