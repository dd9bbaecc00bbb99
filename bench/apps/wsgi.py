"""The WSGI hello-world (and upload) app: ``bench.apps.wsgi:app``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

StartResponse = Callable[..., Any]

BODY = b"Hello, world!"
HELLO_HEADERS = [
    ("Content-Type", "text/plain"),
    ("Content-Length", str(len(BODY))),
]

# Reads of 64 KiB keep the number of calls into the server low without
# asking it to hold a whole 1 MiB body at once.
CHUNK = 64 * 1024


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    if environ["REQUEST_METHOD"] != "POST":
        start_response("200 OK", HELLO_HEADERS)
        return [BODY]

    # An upload: read the whole body, answer how many bytes arrived.
    stream = environ["wsgi.input"]
    size = 0
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            break
        size += len(chunk)
    answer = str(size).encode()
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(answer)))],
    )
    return [answer]
