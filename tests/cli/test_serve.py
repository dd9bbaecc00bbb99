"""``iodine serve`` serving real applications, driven over real sockets.

These need iodine-http, and are skipped only while ``iodine.http`` cannot be
found at all.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import (
    ASGI_APP,
    WSGI_APP,
    StartServer,
    clean_env,
    free_port,
    needs_http,
    run_iodine,
    write_app,
)

pytestmark = needs_http


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    # trust_env=False: a proxy configured on the machine must not see these.
    with httpx.Client(timeout=10, trust_env=False) as client:
        yield client


@pytest.fixture
def asgi_dir(tmp_path: Path) -> Path:
    write_app(tmp_path, "asgi_app.py", ASGI_APP)
    return tmp_path


def wait_for_output(
    server_output: Callable[[], str], text: str, timeout: float = 5
) -> str:
    """Poll ``server_output()`` until it contains ``text``; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        output = server_output()
        if text in output:
            return output
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never appeared in:\n{output}")
        time.sleep(0.05)


def test_serves_an_asgi_app_named_as_module_attr(
    serve: StartServer, asgi_dir: Path, http: httpx.Client
) -> None:
    port = free_port()
    server = serve("asgi_app:app", "-p", str(port), port=port, cwd=asgi_dir)

    got = http.get(f"{server.url}/hello")
    posted = http.post(f"{server.url}/upload", content=b"x" * 1000)

    assert (got.status_code, got.text) == (200, "asgi GET /hello 0")
    assert (posted.status_code, posted.text) == (200, "asgi POST /upload 1000")
    assert f"Serving asgi_app:app on tcp://127.0.0.1:{port}." in server.output()


@pytest.mark.parametrize("interface", [[], ["--interface", "wsgi"]])
def test_serves_a_wsgi_file_by_path(
    serve: StartServer, tmp_path: Path, http: httpx.Client, interface: list[str]
) -> None:
    write_app(tmp_path, "site/wsgi_app.py", WSGI_APP)
    port = free_port()

    server = serve("site/wsgi_app.py", "--port", str(port), *interface, port=port)
    response = http.get(f"{server.url}/page")

    assert (response.status_code, response.text) == (200, "wsgi GET /page")
    assert "Serving site/wsgi_app.py:application" in server.output()


def test_port_comes_from_the_port_variable(
    serve: StartServer, asgi_dir: Path, http: httpx.Client
) -> None:
    port = free_port()

    server = serve(
        "asgi_app:app", port=port, cwd=asgi_dir, env=clean_env(PORT=str(port))
    )

    assert http.get(server.url).status_code == 200


def test_dash_p_beats_the_port_variable(
    serve: StartServer, asgi_dir: Path, http: httpx.Client
) -> None:
    port, other = free_port(), free_port()

    server = serve(
        "asgi_app:app", "-p", str(port), port=port, cwd=asgi_dir,
        env=clean_env(PORT=str(other)),
    )  # fmt: skip

    assert http.get(server.url).status_code == 200
    assert f"127.0.0.1:{port}" in server.output()


@pytest.mark.parametrize(
    "flags",
    [
        ["-b", "127.0.0.1", "-t", "2", "-maxbd", "1", "-v", "-k", "5"],
        ["--bind", "127.0.0.1", "--threads", "2", "--max-body", "1", "--log",
         "--keep-alive", "5"],
    ],
    ids=["iodine-flags", "posix-flags"],
)  # fmt: skip
def test_both_spellings_configure_the_server(
    serve: StartServer,
    asgi_dir: Path,
    http: httpx.Client,
    flags: list[str],
) -> None:
    port = free_port()
    server = serve("asgi_app:app", "-p", str(port), *flags, port=port, cwd=asgi_dir)

    small = http.post(f"{server.url}/small", content=b"x" * 1024)
    large = http.post(f"{server.url}/large", content=b"x" * (2 * 1024 * 1024))

    assert small.status_code == 200
    assert large.status_code == 413  # -maxbd 1: over 1 MiB
    assert "2 threads" in server.output()
    wait_for_output(server.output, "/small")  # -v: the access log


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path: AF_UNIX paths stop at 107 bytes on Linux."""
    folder = Path(tempfile.mkdtemp(prefix="iodine-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_serves_on_a_unix_socket(
    serve: StartServer, asgi_dir: Path, short_dir: Path
) -> None:
    path = short_dir / "app.sock"
    serve("asgi_app:app", "-b", str(path), port=None, cwd=asgi_dir)

    transport = httpx.HTTPTransport(uds=str(path))
    with httpx.Client(transport=transport, timeout=10, trust_env=False) as client:
        response = client.get("http://iodine/unix")

    assert response.text == "asgi GET /unix 0"


def test_port_in_use_is_one_line_and_exit_1(asgi_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = run_iodine("serve", "asgi_app:app", "-p", str(port), cwd=asgi_dir)

    assert result.code == 1, result
    assert "Traceback" not in result.stderr
    lines = result.error_lines
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        f"iodine: error: cannot listen on tcp://127.0.0.1:{port}"
    )
    assert "in use" in lines[0]


def test_http_option_value_rejected_by_the_service_is_a_usage_error(
    asgi_dir: Path,
) -> None:
    result = run_iodine(
        "serve", "asgi_app:app", "-p", str(free_port()), "--root-path", "/api/",
        cwd=asgi_dir,
    )  # fmt: skip

    assert result.code == 2, result
    assert len(result.error_lines) == 1, result.stderr
    assert "root_path" in result.stderr


def test_compression_tuning_without_compression_is_named_before_the_app(
    tmp_path: Path,
) -> None:
    # The module does not exist: the command line's own mistake comes first.
    result = run_iodine(
        "serve", "no_such_module:app", "--ws-window-bits", "12", cwd=tmp_path
    )

    assert result.code == 2, result
    assert result.error_lines == [
        "iodine: usage error: --ws-window-bits tunes compression: add --ws-compression"
    ], result.stderr


@pytest.mark.parametrize("flag", ["-pid", "--pid"])
def test_pid_file_is_written_at_start_and_removed_at_exit(
    serve: StartServer, asgi_dir: Path, tmp_path: Path, flag: str
) -> None:
    pid_file = tmp_path / "run" / "iodine.pid"
    pid_file.parent.mkdir()
    port = free_port()

    server = serve(
        "asgi_app:app", "-p", str(port), flag, str(pid_file), port=port, cwd=asgi_dir
    )

    assert pid_file.read_text().strip() == str(server.process.pid)
    assert server.terminate() == 0
    assert not pid_file.exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_server_cleanly(
    serve: StartServer, asgi_dir: Path, http: httpx.Client, sig: signal.Signals
) -> None:
    port = free_port()
    server = serve("asgi_app:app", "-p", str(port), port=port, cwd=asgi_dir)
    assert http.get(server.url).status_code == 200

    server.process.send_signal(sig)
    code = server.process.wait(15)

    output = server.output()
    assert code == 0, output
    assert "iodine stopped." in output
    assert "Traceback" not in output


def test_quiet_verbosity_hides_the_start_up_lines(
    serve: StartServer, asgi_dir: Path, http: httpx.Client
) -> None:
    port = free_port()
    server = serve(
        "asgi_app:app", "-p", str(port), "-V", "error", port=port, cwd=asgi_dir,
        ready=None,
    )  # fmt: skip

    assert http.get(server.url).status_code == 200
    assert server.terminate() == 0
    assert not re.search(r"running|Serving", server.output())


WS_APP = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return
    assert scope["type"] == "websocket"
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message.get("text")})
"""


def test_websocket_options_reach_the_server(serve: StartServer, tmp_path: Path) -> None:
    from websockets.exceptions import ConnectionClosedError
    from websockets.sync.client import connect

    write_app(tmp_path, "ws_app.py", WS_APP)
    port = free_port()
    serve("ws_app:app", "-p", str(port), "-maxms", "1", "--ws-compression",
          "--ws-window-bits", "12", port=port)  # fmt: skip

    url = f"ws://127.0.0.1:{port}/"
    with connect(url, open_timeout=5) as ws:
        # --ws-compression: the offer websockets makes by default is taken,
        # within the window --ws-window-bits allows.
        extensions = ws.response.headers.get("sec-websocket-extensions", "")
        assert extensions == (
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
        )
        ws.send("x" * 1024)
        assert ws.recv(timeout=5) == "x" * 1024
        # -maxms 1: one byte over a KiB is refused with 1009.
        ws.send("y" * 1025)
        with pytest.raises(ConnectionClosedError) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
