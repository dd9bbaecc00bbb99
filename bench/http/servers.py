"""The HTTP servers under test and how each is started: one worker, one app.

Every server runs ``bench.apps.asgi:app`` or ``bench.apps.wsgi:app`` from the
repository root, logs only warnings, and gets the same thread count where it
has one. Each command is given the port to bind on 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
from importlib.metadata import entry_points

from bench.model import Target
from bench.processes import python

ASGI_APP = "bench.apps.asgi:app"
WSGI_APP = "bench.apps.wsgi:app"

# Threads for the WSGI servers that take a count: iodine's default pool size,
# so gunicorn's gthread worker is not starved or favoured against it.
WSGI_THREADS = 8

# uvicorn closes idle keep-alive connections after 5 s by default; the idle
# memory scenario needs them held while 10,000 are opened and measured. It
# changes nothing under load, where no connection is ever idle.
UVICORN_KEEP_ALIVE = 120


def iodine_http_missing() -> str | None:
    """Why iodine's HTTP service cannot run here, or None if it can."""
    if any(True for _ in entry_points(group="iodine.services", name="http")):
        return None
    if importlib.util.find_spec("iodine") is None:
        return "iodine-core is not installed"
    if importlib.util.find_spec("iodine.http") is not None:
        return None
    return "iodine-http is not installed (packages/iodine-http does not exist yet)"


def _iodine(interface: str) -> Target:
    return Target(
        name=f"iodine-{interface}",
        description=(
            f"iodine-http, {interface.upper()} app through "
            "iodine.listen(service='http'), callbacks and threads at defaults"
        ),
        command=lambda port: python(
            "-m", "bench.http.iodine_server", interface, str(port)
        ),
        unavailable=iodine_http_missing(),
    )


def _uvicorn() -> Target:
    return Target(
        name="uvicorn",
        description="uvicorn with httptools + uvloop, --no-access-log, 1 process",
        command=lambda port: python(
            "-m",
            "uvicorn",
            ASGI_APP,
            "--host=127.0.0.1",
            f"--port={port}",
            "--loop=uvloop",
            "--http=httptools",
            "--no-access-log",
            "--log-level=warning",
            f"--timeout-keep-alive={UVICORN_KEEP_ALIVE}",
        ),
    )


def _granian(interface: str) -> Target:
    def command(port: int) -> list[str]:
        argv = python(
            "-m",
            "granian",
            f"--interface={interface}",
            "--host=127.0.0.1",
            f"--port={port}",
            "--workers=1",
            "--runtime-threads=1",
            "--http=1",
            "--log-level=warning",
            "--no-access-log",
        )
        if interface == "asgi":
            # uvloop, like uvicorn and iodine; no WebSocket handling needed.
            argv += ["--loop=uvloop", "--no-ws"]
        else:
            argv += [f"--blocking-threads={WSGI_THREADS}"]
        return [*argv, ASGI_APP if interface == "asgi" else WSGI_APP]

    return Target(
        name=f"granian-{interface}",
        description=(
            f"granian --interface {interface}, 1 worker, 1 runtime thread, HTTP/1"
            + (", uvloop" if interface == "asgi" else f", {WSGI_THREADS} threads")
        ),
        command=command,
    )


def _gunicorn() -> Target:
    return Target(
        name="gunicorn-gthread",
        description=f"gunicorn, gthread worker, 1 worker, {WSGI_THREADS} threads",
        command=lambda port: python(
            "-m",
            "gunicorn",
            f"--bind=127.0.0.1:{port}",
            "--workers=1",
            "--worker-class=gthread",
            f"--threads={WSGI_THREADS}",
            "--log-level=warning",
            WSGI_APP,
        ),
    )


def _floor() -> Target:
    return Target(
        name="uvloop-floor",
        description=(
            "not a peer: a bare asyncio.Protocol on uvloop + httptools answering "
            "each request with the same bytes, no application interface "
            "(http/floor_server.py)"
        ),
        command=lambda port: python("-m", "bench.http.floor_server", str(port)),
    )


def targets() -> list[Target]:
    """Every HTTP target, iodine first."""
    return [
        _iodine("asgi"),
        _iodine("wsgi"),
        _uvicorn(),
        _granian("asgi"),
        _granian("wsgi"),
        _gunicorn(),
        _floor(),
    ]
