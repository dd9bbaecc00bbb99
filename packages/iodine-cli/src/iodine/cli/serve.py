"""The ``iodine serve`` command line: every option, its flags and its help.

Ruby iodine's flags are single-dash words (``-www``, ``-maxbd``, ``-tls-cert``).
Click, under Typer, takes any option name it is given and matches a single-dash
word as a whole before trying short-flag clusters, so ``-www`` is declared here
as an ordinary name next to its POSIX spelling (``--public``), and ``-w 4`` and
``-www DIR`` do not collide. Values arrive in the user's units; :mod:`config`
converts them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from iodine.cli.config import (
    DEFAULT_PORT,
    VERBOSITY_NAMES,
    Interface,
    Lifespan,
    ServeOptions,
    parse_verbosity,
)
from iodine.cli.runner import serve

SERVER = "Server"
HTTP = "HTTP"
LIMITS = "Limits"
LOGS = "Logging"
WEBSOCKET = "WebSocket and SSE"
LATER = "Not available in this version (accepted, then refused with exit code 2)"

# The environment variables an option falls back to, in the order click reads
# them; the first one set wins. Options with one variable pass it to click as a
# plain string (``[0]``), which click quotes better in its messages than a list.
ENVVARS = {
    "port": ["PORT"],
    "threads": ["THREADS"],
    "workers": ["WEB_CONCURRENCY", "WORKERS"],
    "redis": ["IODINE_REDIS_URL"],
    "forwarded_allow_ips": ["FORWARDED_ALLOW_IPS"],
}
# Values not repeated in messages, since they may carry a password.
SECRET_ENVVARS = {"redis"}


def _check_verbosity(value: str) -> str:
    try:
        parse_verbosity(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


def serve_command(
    ctx: typer.Context,
    *,
    app: Annotated[
        str | None,
        typer.Argument(
            metavar="APP",
            help="The application: module:attr or path/to/file.py[:attr]. "
            "Without attr, 'app' then 'application' is used. The current "
            "directory is importable.",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int,
        typer.Option(
            "-p",
            "--port",
            envvar=ENVVARS["port"][0],
            metavar="PORT",
            min=0,
            max=65535,
            help="TCP port to listen on (0 picks a free one).",
            rich_help_panel=SERVER,
        ),
    ] = DEFAULT_PORT,
    bind: Annotated[
        str | None,
        typer.Option(
            "-b",
            "--bind",
            metavar="ADDRESS",
            help="Address to listen on, or a Unix socket path (anything with a "
            "'/' or ending in .sock). Default 127.0.0.1.",
            show_default=False,
            rich_help_panel=SERVER,
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            "-t",
            "--threads",
            envvar=ENVVARS["threads"][0],
            metavar="COUNT",
            min=1,
            help="Threads for blocking work (WSGI applications run there). Default 8.",
            show_default=False,
            rich_help_panel=SERVER,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "-w",
            "--workers",
            envvar=ENVVARS["workers"],
            metavar="COUNT",
            min=1,
            help="Worker processes. Only 1 is available in this version; more "
            "is refused.",
            show_default=False,
            rich_help_panel=SERVER,
        ),
    ] = None,
    interface: Annotated[
        Interface,
        Lifespan,
        typer.Option(
            "--interface",
            case_sensitive=False,
            help="Application interface; auto detects ASGI or WSGI.",
            rich_help_panel=HTTP,
        ),
    ] = Interface.AUTO,
    lifespan: Annotated[
        Lifespan,
        typer.Option(
            "--lifespan",
            case_sensitive=False,
            help="ASGI lifespan events: auto runs them if the application "
            "supports them, on makes a failed start-up stop the server, off "
            "never sends them.",
            rich_help_panel=HTTP,
        ),
    ] = Lifespan.AUTO,
    keep_alive: Annotated[
        int | None,
        typer.Option(
            "-k",
            "--keep-alive",
            metavar="SECONDS",
            min=1,
            help="Close idle keep-alive connections after this long. Default 40.",
            show_default=False,
            rich_help_panel=HTTP,
        ),
    ] = None,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            "--forwarded-allow-ips",
            envvar=ENVVARS["forwarded_allow_ips"][0],
            metavar="IPS",
            help="Comma-separated proxy addresses whose X-Forwarded-For, "
            "X-Forwarded-Proto and Forwarded headers are trusted ('*' for "
            "all). Default 127.0.0.1.",
            show_default=False,
            rich_help_panel=HTTP,
        ),
    ] = None,
    root_path: Annotated[
        str | None,
        typer.Option(
            "--root-path",
            metavar="PATH",
            help="ASGI root_path / WSGI SCRIPT_NAME when mounted below a proxy prefix.",
            show_default=False,
            rich_help_panel=HTTP,
        ),
    ] = None,
    server_header: Annotated[
        str | None,
        typer.Option(
            "--server-header",
            metavar="TEXT",
            help="Send 'Server: TEXT' with every response. Default: no Server header.",
            show_default=False,
            rich_help_panel=HTTP,
        ),
    ] = None,
    max_body: Annotated[
        int | None,
        typer.Option(
            "-maxbd",
            "--max-body",
            metavar="MIB",
            min=1,
            help="Largest request body, in MiB; bigger ones get 413. Default 50.",
            show_default=False,
            rich_help_panel=LIMITS,
        ),
    ] = None,
    max_header: Annotated[
        int | None,
        typer.Option(
            "-maxhd",
            "--max-header-size",
            metavar="KIB",
            min=1,
            help="Largest total of request headers, in KiB; more gets 431. Default 32.",
            show_default=False,
            rich_help_panel=LIMITS,
        ),
    ] = None,
    max_header_line: Annotated[
        int | None,
        typer.Option(
            "--max-header-line",
            metavar="KIB",
            min=1,
            help="Longest request line or header line, in KiB; longer gets 414 "
            "or 431. Default 8.",
            show_default=False,
            rich_help_panel=LIMITS,
        ),
    ] = None,
    max_headers: Annotated[
        int | None,
        typer.Option(
            "--max-headers",
            metavar="COUNT",
            min=1,
            help="Most header fields in one request; more gets 431. Default 128.",
            show_default=False,
            rich_help_panel=LIMITS,
        ),
    ] = None,
    header_timeout: Annotated[
        float | None,
        typer.Option(
            "--header-timeout",
            metavar="SECONDS",
            min=0,
            help="Close a connection whose request headers have not all "
            "arrived in this time (slowloris defence).",
            show_default=False,
            rich_help_panel=LIMITS,
        ),
    ] = None,
    max_connections: Annotated[
        int | None,
        typer.Option(
            "--max-connections",
            metavar="COUNT",
            min=1,
            help="Concurrent connections above which new ones get 503.",
            show_default=False,
            rich_help_panel=LIMITS,
        ),
    ] = None,
    fd_reserve: Annotated[
        int | None,
        typer.Option(
            "--fd-reserve",
            metavar="COUNT",
            min=0,
            help="Free file descriptors kept for the application (database "
            "connections...); below it new connections get 503. Default 64.",
            show_default=False,
            rich_help_panel=LIMITS,
        ),
    ] = None,
    log: Annotated[
        bool,
        typer.Option(
            "-v",
            "--log",
            help="Log every request to stderr (the iodine.access logger).",
            rich_help_panel=LOGS,
        ),
    ] = False,
    verbosity: Annotated[
        str,
        typer.Option(
            "-V",
            "--verbosity",
            metavar="LEVEL",
            callback=_check_verbosity,
            help=f"Log level of iodine's own lines: {VERBOSITY_NAMES}. debug "
            "also shows tracebacks of start-up errors.",
            show_default=False,
            rich_help_panel=LOGS,
        ),
    ] = "info",
    pid: Annotated[
        Path | None,
        typer.Option(
            "-pid",
            "--pid",
            metavar="FILE",
            help="Write the process id to FILE at start; remove it at exit.",
            show_default=False,
            rich_help_panel=LOGS,
        ),
    ] = None,
    public: Annotated[
        Path | None,
        typer.Option(
            "-www",
            "--public",
            metavar="DIR",
            help="Serve static files from DIR (APP may then be omitted).",
            show_default=False,
            rich_help_panel=LATER,
        ),
    ] = None,
    max_message: Annotated[
        int | None,
        typer.Option(
            "-maxms",
            "--max-message",
            metavar="KIB",
            min=1,
            help="Largest incoming WebSocket message, in KiB; a larger one is "
            "closed with 1009. Default 256.",
            show_default=False,
            rich_help_panel=WEBSOCKET,
        ),
    ] = None,
    ping: Annotated[
        int | None,
        typer.Option(
            "-ping",
            "--ping",
            metavar="SECONDS",
            min=0,
            help="Seconds of WebSocket silence before a ping (and of SSE "
            "silence before a ': ping' comment); 0 for none. Default 40.",
            show_default=False,
            rich_help_panel=WEBSOCKET,
        ),
    ] = None,
    ws_compression: Annotated[
        bool,
        typer.Option(
            "--ws-compression",
            help="Accept permessage-deflate from clients that offer it "
            "(costs memory per connection; off by default).",
            rich_help_panel=WEBSOCKET,
        ),
    ] = False,
    ws_window_bits: Annotated[
        int | None,
        typer.Option(
            "--ws-window-bits",
            metavar="BITS",
            min=9,
            max=15,
            help="With --ws-compression, the largest compression window "
            "(9-15: 512 B to 32 KiB) for both directions. Default 10.",
            show_default=False,
            rich_help_panel=WEBSOCKET,
        ),
    ] = None,
    ws_mem_level: Annotated[
        int | None,
        typer.Option(
            "--ws-mem-level",
            metavar="LEVEL",
            min=1,
            max=9,
            help="With --ws-compression, zlib's memLevel for the server's "
            "compressor (1-9; 9 costs most memory). Default 4.",
            show_default=False,
            rich_help_panel=WEBSOCKET,
        ),
    ] = None,
    tls: Annotated[
        bool,
        typer.Option(
            "-tls",
            help="Serve HTTPS with a self-signed certificate.",
            rich_help_panel=LATER,
        ),
    ] = False,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            "-tls-cert",
            metavar="FILE",
            help="TLS certificate (PEM).",
            show_default=False,
            rich_help_panel=LATER,
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(
            "-tls-key",
            metavar="FILE",
            help="TLS private key (PEM).",
            show_default=False,
            rich_help_panel=LATER,
        ),
    ] = None,
    tls_pass: Annotated[
        str | None,
        typer.Option(
            "-tls-pass",
            metavar="PASSWORD",
            help="Password of the TLS private key.",
            show_default=False,
            rich_help_panel=LATER,
        ),
    ] = None,
    redis: Annotated[
        str | None,
        typer.Option(
            "-r",
            "--redis",
            envvar=ENVVARS["redis"][0],
            metavar="URL",
            help="Redis server for pub/sub across processes and machines.",
            show_default=False,
            rich_help_panel=LATER,
        ),
    ] = None,
) -> None:
    """Serve an ASGI or WSGI application over HTTP until SIGINT or SIGTERM.

    For example: iodine serve app:app -p 8000 -t 16 -v
    """
    options = ServeOptions(
        app=app,
        port=port,
        bind=bind,
        threads=threads,
        workers=workers,
        public=public,
        log=log,
        keep_alive=keep_alive,
        max_body_mib=max_body,
        max_header_kib=max_header,
        max_message_kib=max_message,
        ping=ping,
        ws_compression=ws_compression,
        ws_window_bits=ws_window_bits,
        ws_mem_level=ws_mem_level,
        tls=tls,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_pass=tls_pass,
        redis=redis,
        pid=pid,
        verbosity=parse_verbosity(verbosity),
        interface=interface,
        lifespan=lifespan,
        forwarded_allow_ips=forwarded_allow_ips,
        root_path=root_path,
        max_header_line_kib=max_header_line,
        max_headers=max_headers,
        header_timeout=header_timeout,
        max_connections=max_connections,
        fd_reserve=fd_reserve,
        server_header=server_header,
        env=_from_environment(ctx),
    )
    serve(options)


def _from_environment(ctx: typer.Context) -> dict[str, str]:
    """``{option: "VAR=value"}`` for the options click read from the environment."""
    found: dict[str, str] = {}
    for name, variables in ENVVARS.items():
        source = ctx.get_parameter_source(name)
        if source is None or source.name != "ENVIRONMENT":
            continue
        variable = next(v for v in variables if os.environ.get(v))
        if name in SECRET_ENVVARS:
            found[name] = variable
        else:
            found[name] = f"{variable}={os.environ[variable]}"
    return found
