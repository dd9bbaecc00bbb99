"""Unmodified framework applications for the end-to-end tests.

Written as their own documentation shows, with the features that depend on
the server's task and context semantics: middleware, streaming responses,
background tasks, lifespan state, request bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import FastAPI
from flask import Flask, Response, request
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route


def mark(text: str) -> None:
    sys.stderr.write(f"MARK {text}\n")
    sys.stderr.flush()


# -------------------------------------------------------------- Starlette


class TimingHeader(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["x-middleware"] = "ran"
        return response


async def homepage(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"hello from {request.app.state.name}")


async def stream(request: Request) -> StreamingResponse:
    async def numbers() -> AsyncIterator[bytes]:
        for number in range(5):
            await asyncio.sleep(0)
            yield f"{number}\n".encode()

    return StreamingResponse(numbers(), media_type="text/plain")


async def background(request: Request) -> PlainTextResponse:
    async def later(value: str) -> None:
        await asyncio.sleep(0.01)
        mark(f"background-ran {value}")

    return PlainTextResponse("queued", background=BackgroundTask(later, "42"))


async def upload(request: Request) -> JSONResponse:
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
    return JSONResponse({"received": total})


async def json_body(request: Request) -> JSONResponse:
    data = await request.json()
    return JSONResponse({"doubled": [value * 2 for value in data]})


async def big(request: Request) -> PlainTextResponse:
    return PlainTextResponse("z" * 100_000)


@contextlib.asynccontextmanager
async def starlette_lifespan(app: Starlette) -> AsyncIterator[dict[str, str]]:
    app.state.name = "starlette"
    yield {"db": "connected"}
    mark("starlette-shutdown")


async def state(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.state.db)


starlette_app = Starlette(
    routes=[
        Route("/", homepage),
        Route("/stream", stream),
        Route("/background", background),
        Route("/upload", upload, methods=["POST"]),
        Route("/json", json_body, methods=["POST"]),
        Route("/big", big),
        Route("/state", state),
    ],
    middleware=[Middleware(TimingHeader), Middleware(GZipMiddleware, minimum_size=500)],
    lifespan=starlette_lifespan,
)


# ---------------------------------------------------------------- FastAPI

fastapi_app = FastAPI()


class Item(BaseModel):
    name: str
    price: float


@fastapi_app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
    return {"item_id": item_id, "q": q}


@fastapi_app.post("/items")
async def create_item(item: Item) -> Item:
    return item


@fastapi_app.get("/sync")
def sync_endpoint() -> dict[str, str]:
    # Runs in anyio's worker threads: needs a working current task.
    return {"ran": "in a thread"}


@fastapi_app.get("/stream")
async def fastapi_stream() -> StreamingResponse:
    async def words() -> AsyncIterator[bytes]:
        for word in (b"alpha ", b"beta ", b"gamma"):
            yield word

    return StreamingResponse(words())


# ------------------------------------------------------------------ Flask

flask_app = Flask(__name__)


@flask_app.route("/")
def flask_home() -> str:
    return "hello from flask"


@flask_app.route("/echo", methods=["POST"])
def flask_echo() -> Response:
    return Response(request.get_data(), mimetype="application/octet-stream")


@flask_app.route("/json", methods=["POST"])
def flask_json() -> dict[str, Any]:
    payload = request.get_json()
    return {"got": payload, "path": request.path, "script": request.script_root}


@flask_app.route("/stream")
def flask_stream() -> Response:
    def generate() -> Iterator[str]:
        for number in range(3):
            yield f"line {number}\n"

    return Response(generate(), mimetype="text/plain")


@flask_app.route("/missing-thing")
def flask_error() -> str:
    raise KeyError("not here")
