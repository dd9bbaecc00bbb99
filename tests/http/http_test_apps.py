"""Plain ASGI and WSGI applications the HTTP tests run in server processes.

Each answers by path, so one server process covers many tests. Markers the
tests look for in the server's log are written to stderr.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import sys
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

Send = Any
Receive = Any

_request_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_var")
_stale_send: list[Send] = []


def mark(text: str) -> None:
    sys.stderr.write(f"MARK {text}\n")
    sys.stderr.flush()


async def _respond(
    send: Send,
    body: bytes,
    status: int = 200,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": headers or [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes:
    body = b""
    for _ in range(1_000_000):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client went away")
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    return body


def _scope_json(scope: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "method": scope["method"],
            "path": scope["path"],
            "raw_path": scope["raw_path"].decode("latin-1"),
            "query_string": scope["query_string"].decode("latin-1"),
            "http_version": scope["http_version"],
            "scheme": scope["scheme"],
            "client": list(scope["client"]) if scope["client"] else None,
            "server": list(scope["server"]) if scope["server"] else None,
            "root_path": scope["root_path"],
            "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
            "spec_version": scope["asgi"].get("spec_version"),
            "extensions": sorted(scope.get("extensions", {})),
        }
    ).encode()


async def echo(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """The general-purpose ASGI test application."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/":
        await _respond(send, b"Hello, world!")
    elif path == "/scope" or path.endswith("/scope"):
        await _respond(send, _scope_json(scope))
    elif path == "/echo":
        body = await _read_body(receive)
        await _respond(send, body)
    elif path == "/length":
        body = await _read_body(receive)
        await _respond(send, str(len(body)).encode())
    elif path.startswith("/n/"):
        await _respond(send, path[3:].encode())
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for piece in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path.startswith("/status/"):
        await _respond(send, b"", status=int(path[8:]))
    elif path == "/error":
        raise RuntimeError("boom before the response")
    elif path == "/no-response":
        return
    elif path == "/error-after-start":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send(
            {"type": "http.response.body", "body": b"partial", "more_body": True}
        )
        raise RuntimeError("boom in the middle")
    elif path == "/ignore-body":
        await _respond(send, b"ignored")
    elif path == "/trailers":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"trailer", b"x-checksum")],
                "trailers": True,
            }
        )
        await send({"type": "http.response.body", "body": b"data", "more_body": True})
        await send({"type": "http.response.body", "body": b"more"})
        await send(
            {"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")]}
        )
    elif path == "/pathsend":
        file_path = parse_qs(scope["query_string"].decode())["path"][0]
        size = len(open(file_path, "rb").read())  # noqa: SIM115
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(size).encode())],
            }
        )
        await send({"type": "http.response.pathsend", "path": file_path})
    elif path == "/wait-disconnect":
        await _read_body(receive)
        message = await receive()
        mark(f"disconnect-seen {message['type']}")
    elif path == "/stream-until-gone":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            for _ in range(100_000):
                await send(
                    {
                        "type": "http.response.body",
                        "body": b"x" * 1024,
                        "more_body": True,
                    }
                )
                await asyncio.sleep(0.001)
        except OSError as exc:
            mark(f"send-raised {type(exc).__name__}")
            raise
    elif path == "/keep-send":
        _stale_send.append(send)
        await _respond(send, b"kept")
    elif path == "/use-stale-send":
        try:
            await _stale_send.pop()({"type": "http.response.body", "body": b"LEAK"})
        except Exception as exc:
            outcome = type(exc).__name__
        else:
            outcome = "no error"
        await _respond(send, outcome.encode())
    elif path == "/context":
        seen = _request_var.get("unset")
        _request_var.set("set by an earlier request")
        await _respond(send, seen.encode())
    elif path == "/slow":
        mark("slow-started")
        await asyncio.sleep(0.5)
        await _respond(send, b"finished")
    elif path == "/big-stream":
        # 16 MiB in 64 KiB pieces: more than any socket buffer, so send()
        # has to wait for the client (write backpressure).
        await send({"type": "http.response.start", "status": 200, "headers": []})
        piece = b"b" * 65536
        for _ in range(256):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/sleep":
        await asyncio.sleep(0.02)
        await _respond(send, b"slept")
    elif path == "/http10-stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})
    elif path == "/with-length":
        await _respond(send, b"sized", headers=[(b"Content-Length", b"5")])
    elif path == "/headers-out":
        await _respond(send, b"x", headers=[(b"x-custom", b"1")])
    elif path == "/bad-header":
        await _respond(send, b"x", headers=[(b"x-bad", b"a\r\nInjected: yes")])
    else:
        await _respond(send, b"not found", status=404)


# ------------------------------------------------------------- lifespan


async def lifespan_app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        for _ in range(10):
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["started"] = "yes"
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                mark("lifespan-shutdown")
                await send({"type": "lifespan.shutdown.complete"})
                return
        return
    await _respond(send, scope["state"]["started"].encode())


async def lifespan_fails(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})
        return
    await _respond(send, b"should not serve")


async def no_lifespan(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        raise ValueError(f"unsupported scope {scope['type']}")
    await _respond(send, b"served")


# ----------------------------------------------------------------- WSGI


class _Tracked:
    """An iterable whose close() is logged, and that can fail midway."""

    def __init__(self, fail: bool) -> None:
        self.fail = fail

    def __iter__(self) -> Iterator[bytes]:
        yield b"first,"
        if self.fail:
            raise RuntimeError("boom while iterating")
        yield b"second"

    def close(self) -> None:
        mark(f"closed fail={self.fail}")


# Gates a test opens from outside the server process (GET /gate/open?NAME),
# so an application can be held at a point the test chooses.
_gates: dict[str, threading.Event] = {}
_gates_lock = threading.Lock()

# How long a held application waits for its gate: past any test's own
# bounded reads, so a test fails before the application moves on by itself.
_GATE_SECONDS = 5.0


def _gate(name: str) -> threading.Event:
    with _gates_lock:
        return _gates.setdefault(name, threading.Event())


_barriers: dict[str, threading.Barrier] = {}


def _meet(name: str, parties: int) -> bool:
    """Wait until ``parties`` requests named ``name`` run at the same time."""
    with _gates_lock:
        barrier = _barriers.setdefault(name, threading.Barrier(parties))
    try:
        barrier.wait(_GATE_SECONDS)
    except threading.BrokenBarrierError:
        return False
    return True


def _gated_pieces(name: str) -> Iterator[bytes]:
    """A first piece; the second only once the test opened gate ``name``."""
    yield b"first,"
    opened = _gate(name).wait(_GATE_SECONDS)
    with _gates_lock:
        _gates.pop(name, None)
    yield b"second" if opened else b"gate never opened"


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Any:
    """The general-purpose WSGI test application."""
    path = environ["PATH_INFO"]
    if path == "/":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"Hello, WSGI!"]
    if path == "/echo":
        stream = environ["wsgi.input"]
        pieces = []
        for _ in range(1_000_000):
            piece = stream.read(1000)
            if not piece:
                break
            pieces.append(piece)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [b"".join(pieces)]
    if path == "/lines":
        lines = environ["wsgi.input"].readlines()
        start_response("200 OK", [])
        return [str(len(lines)).encode()]
    if path == "/stream":
        start_response("200 OK", [])
        return iter([b"one,", b"two,", b"three"])
    if path in ("/close", "/close-error"):
        start_response("200 OK", [])
        return _Tracked(fail=path == "/close-error")
    if path == "/file":
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"f" * 200_000), 8192)
    if path == "/big-stream":
        start_response("200 OK", [])
        return (b"w" * 65536 for _ in range(256))
    if path == "/gated":
        start_response("200 OK", [])
        return _gated_pieces(environ["QUERY_STRING"])
    if path == "/together":
        # Answers only once as many requests as it names wait here at once:
        # each holds a pool thread, so they must all have one.
        name, _, parties = environ["QUERY_STRING"].partition("-")
        met = _meet(name, int(parties))
        start_response("200 OK", [])
        return [b"met" if met else b"alone"]
    if path == "/gate/open":
        _gate(environ["QUERY_STRING"]).set()
        start_response("200 OK", [])
        return [b"opened"]
    if path == "/read-first":
        # Reads as many bytes as X-Read-First says and logs them before it
        # asks for the rest: the log shows what arrived while the client
        # still held the rest of its body back.
        stream = environ["wsgi.input"]
        first = stream.read(int(environ["HTTP_X_READ_FIRST"]))
        mark(f"input-read {first.decode('latin-1')}")
        rest = stream.read()
        start_response("200 OK", [])
        return [b"%d,%d" % (len(first), len(rest))]
    if path == "/write":
        write = start_response("200 OK", [("Content-Length", "10")])
        write(b"hello")
        return [b"world"]
    if path == "/error":
        raise RuntimeError("boom in WSGI")
    if path == "/environ":
        start_response("200 OK", [("Content-Type", "application/json")])
        keys = (
            "REQUEST_METHOD",
            "SCRIPT_NAME",
            "PATH_INFO",
            "QUERY_STRING",
            "SERVER_PROTOCOL",
            "REMOTE_ADDR",
            "CONTENT_TYPE",
            "CONTENT_LENGTH",
            "HTTP_X_TWICE",
            "HTTP_X_UNDER",
            "wsgi.url_scheme",
        )
        return [json.dumps({key: environ.get(key) for key in keys}).encode()]
    start_response("404 Not Found", [])
    return [b"not found"]
