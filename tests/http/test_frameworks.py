"""Starlette, FastAPI and Flask applications, unmodified, end to end.

These run on every supported Python with the fast path on: on 3.12+ the
application's first step runs in an eager task inside the read that brought
the request, and anyio must still find its current task and context.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.http.conftest import ResponseReader, Server

pytest.importorskip("starlette")
pytest.importorskip("fastapi")
pytest.importorskip("flask")


@pytest.fixture(scope="module")
def starlette(servers: Callable[..., Server]) -> Server:
    return servers("http_framework_apps:starlette_app")


@pytest.fixture(scope="module")
def fastapi(servers: Callable[..., Server]) -> Server:
    return servers("http_framework_apps:fastapi_app")


@pytest.fixture(scope="module")
def flask(servers: Callable[..., Server]) -> Server:
    return servers("http_framework_apps:flask_app")


# -------------------------------------------------------------- Starlette


def test_starlette_middleware_and_lifespan_state(starlette: Server) -> None:
    response = httpx.get(starlette.url("/"))
    assert response.text == "hello from starlette"
    assert response.headers["x-middleware"] == "ran"
    assert httpx.get(starlette.url("/state")).text == "connected"


def test_starlette_streaming_response(starlette: Server) -> None:
    with starlette.connect() as sock:
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        response = ResponseReader(sock).read()
    assert response.header("transfer-encoding") == "chunked"
    assert response.body == b"0\n1\n2\n3\n4\n"


def test_starlette_background_task_runs_after_the_response(starlette: Server) -> None:
    response = httpx.get(starlette.url("/background"))
    assert response.text == "queued"
    assert "MARK background-ran 42" in starlette.wait_for_log("background-ran")


def test_starlette_streamed_upload(starlette: Server) -> None:
    def pieces() -> Iterator[bytes]:
        for _ in range(40):
            yield b"u" * 5000

    response = httpx.post(starlette.url("/upload"), content=pieces())
    assert response.json() == {"received": 200_000}


def test_starlette_json_body(starlette: Server) -> None:
    response = httpx.post(starlette.url("/json"), json=[1, 2, 3])
    assert response.json() == {"doubled": [2, 4, 6]}


def test_starlette_gzip_middleware(starlette: Server) -> None:
    with starlette.connect() as sock:
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n")
        response = ResponseReader(sock).read()
    assert response.header("content-encoding") == "gzip"
    assert gzip.decompress(response.body) == b"z" * 100_000


def test_starlette_pipelined_requests(starlette: Server) -> None:
    with starlette.connect() as sock:
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /state HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        reader = ResponseReader(sock)
        bodies = [reader.read().body for _ in range(3)]
    assert bodies == [b"hello from starlette", b"0\n1\n2\n3\n4\n", b"connected"]


# ---------------------------------------------------------------- FastAPI


def test_fastapi_path_and_query_parameters(fastapi: Server) -> None:
    response = httpx.get(fastapi.url("/items/5?q=x"))
    assert response.json() == {"item_id": 5, "q": "x"}


def test_fastapi_validates_a_json_body(fastapi: Server) -> None:
    good = httpx.post(fastapi.url("/items"), json={"name": "pen", "price": 1.5})
    assert good.json() == {"name": "pen", "price": 1.5}
    bad = httpx.post(fastapi.url("/items"), json={"name": "pen"})
    assert bad.status_code == 422


def test_fastapi_sync_endpoint_runs_in_a_thread(fastapi: Server) -> None:
    assert httpx.get(fastapi.url("/sync")).json() == {"ran": "in a thread"}


def test_fastapi_streaming_response(fastapi: Server) -> None:
    assert httpx.get(fastapi.url("/stream")).text == "alpha beta gamma"


def test_fastapi_many_requests_on_one_connection(fastapi: Server) -> None:
    with httpx.Client() as client:
        for item in range(20):
            assert client.get(fastapi.url(f"/items/{item}")).json()["item_id"] == item


# ------------------------------------------------------------------ Flask


def test_flask_hello(flask: Server) -> None:
    assert httpx.get(flask.url("/")).text == "hello from flask"


def test_flask_echoes_a_body(flask: Server) -> None:
    body = bytes(range(256)) * 500
    assert httpx.post(flask.url("/echo"), content=body).content == body


def test_flask_json(flask: Server) -> None:
    response = httpx.post(flask.url("/json"), json={"a": [1, 2]})
    assert response.json() == {"got": {"a": [1, 2]}, "path": "/json", "script": ""}


def test_flask_streamed_response(flask: Server) -> None:
    assert httpx.get(flask.url("/stream")).text == "line 0\nline 1\nline 2\n"


def test_flask_error_is_500(flask: Server) -> None:
    assert httpx.get(flask.url("/missing-thing")).status_code == 500
    assert httpx.get(flask.url("/")).status_code == 200
