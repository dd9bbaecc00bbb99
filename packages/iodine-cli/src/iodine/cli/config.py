"""What ``iodine serve`` was asked to do, and how that maps onto iodine.

:class:`ServeOptions` holds the parsed command line in the units the user typed
(MiB, KiB, seconds, as Ruby iodine's flags are documented). This module turns it
into ``iodine.settings`` values and the keyword arguments of
``iodine.listen(service="http", ...)``, which take bytes, and refuses the options
whose feature this version does not have yet. It does no I/O, so all of it can be
tested without starting a server.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from iodine.cli.errors import UsageError
from iodine.core.settings import KIB, MIB

DEFAULT_PORT = 3000


class Interface(StrEnum):
    """The application interface; ``auto`` lets iodine-http detect it."""

    AUTO = "auto"
    ASGI = "asgi"
    WSGI = "wsgi"


class Lifespan(StrEnum):
    """ASGI lifespan events: ``auto`` runs them if the application takes them."""

    AUTO = "auto"
    ON = "on"
    OFF = "off"


# Ruby iodine's -V takes facil.io's numeric levels; names are accepted too.
# 0 silences iodine's own log lines entirely.
_NUMERIC_LEVELS = {
    "0": logging.CRITICAL + 10,
    "1": logging.CRITICAL,
    "2": logging.ERROR,
    "3": logging.WARNING,
    "4": logging.INFO,
    "5": logging.DEBUG,
}
_NAMED_LEVELS = {
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}
VERBOSITY_NAMES = "debug, info, warning, error, critical or iodine's 0-5"


def parse_verbosity(value: str) -> int:
    """The :mod:`logging` level that ``-V VALUE`` asks for.

    Raises:
        ValueError: neither a level name nor one of iodine's numbers.
    """
    text = value.strip().lower()
    level = _NAMED_LEVELS.get(text, _NUMERIC_LEVELS.get(text))
    if level is None:
        raise ValueError(f"{value!r} is not a log level; use {VERBOSITY_NAMES}")
    return level


# Options whose feature is not built yet, in the order they are checked:
# (ServeOptions field, how it is spelled, what is missing).
UNBUILT = (
    ("workers", "-w/--workers", "worker processes are"),
    ("public", "-www/--public", "serving static files is"),
    ("tls", "-tls", "TLS is"),
    ("tls_cert", "-tls-cert", "TLS is"),
    ("tls_key", "-tls-key", "TLS is"),
    ("tls_pass", "-tls-pass", "TLS is"),
    ("redis", "-r/--redis", "Redis pub/sub is"),
)


@dataclass
class ServeOptions:
    """The ``iodine serve`` command line, parsed and in the user's units.

    ``None`` means "not given": iodine-http's own default then applies, so the
    defaults (and the reasons for them) live in one place, next to the code that
    enforces them. ``env`` records the options that came from environment
    variables, so that an error can name the variable rather than a flag the user
    never typed.
    """

    app: str | None = None
    port: int = DEFAULT_PORT
    bind: str | None = None
    threads: int | None = None
    workers: int | None = None
    public: Path | None = None
    log: bool = False
    keep_alive: int | None = None
    max_body_mib: int | None = None
    max_header_kib: int | None = None
    max_message_kib: int | None = None
    ping: int | None = None
    ws_compression: bool = False
    ws_window_bits: int | None = None
    ws_mem_level: int | None = None
    tls: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_pass: str | None = None
    redis: str | None = None
    pid: Path | None = None
    verbosity: int = logging.INFO
    interface: Interface = Interface.AUTO
    lifespan: Lifespan = Lifespan.AUTO
    forwarded_allow_ips: str | None = None
    root_path: str | None = None
    max_header_line_kib: int | None = None
    max_headers: int | None = None
    header_timeout: float | None = None
    max_connections: int | None = None
    fd_reserve: int | None = None
    server_header: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    def check_available(self) -> None:
        """Refuse, in one line, the first option whose feature is not built yet.

        Raises:
            UsageError: naming the option (or its environment variable).
        """
        for name, flags, feature in UNBUILT:
            if self._asks_for(name):
                raise UsageError(
                    f"{self._source(name, flags)}: {feature} not available in "
                    "this version of iodine"
                )

    def _asks_for(self, name: str) -> bool:
        value = getattr(self, name)
        if name == "workers":
            return value is not None and value > 1  # one process is what runs
        return value is not None and value is not False

    def _source(self, name: str, flags: str) -> str:
        """How the user set option ``name``: its flags, or ``VAR=value``."""
        if name in self.env:
            return f"{self.env[name]} (read as {flags})"
        if name == "workers":
            return f"{flags} {self.workers}"
        return flags

    def listen_options(self) -> dict[str, Any]:
        """Keyword arguments for ``iodine.listen(service="http", ...)``, in bytes."""
        options: dict[str, Any] = {
            "interface": self.interface.value,
            "lifespan": self.lifespan.value,
        }
        if self.log:
            options["access_log"] = True
        if self.ws_compression:
            options["websocket_compression"] = True
        elif self.ws_window_bits is not None or self.ws_mem_level is not None:
            flag = (
                "--ws-window-bits"
                if self.ws_window_bits is not None
                else "--ws-mem-level"
            )
            raise UsageError(f"{flag} tunes compression: add --ws-compression")
        given: dict[str, Any] = {
            "keep_alive": self.keep_alive,
            "max_body": _scaled(self.max_body_mib, MIB),
            "max_header_bytes": _scaled(self.max_header_kib, KIB),
            "max_header_line": _scaled(self.max_header_line_kib, KIB),
            "max_headers": self.max_headers,
            "max_message": _scaled(self.max_message_kib, KIB),
            "ping": self.ping,
            "websocket_window_bits": self.ws_window_bits,
            "websocket_mem_level": self.ws_mem_level,
            "header_timeout": self.header_timeout,
            "max_connections": self.max_connections,
            "fd_reserve": self.fd_reserve,
            "forwarded_allow_ips": self.forwarded_allow_ips,
            "root_path": self.root_path,
            "server_header": self.server_header,
        }
        options.update({k: v for k, v in given.items() if v is not None})
        return options


def _scaled(value: int | None, unit: int) -> int | None:
    return None if value is None else value * unit
