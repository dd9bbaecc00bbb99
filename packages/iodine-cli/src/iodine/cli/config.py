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
from enum import Enum
from pathlib import Path
from typing import Any

from iodine.core.settings import KIB, MIB

from iodine.cli.errors import UsageError

DEFAULT_PORT = 3000


class Interface(str, Enum):
    """The application interface; ``auto`` lets iodine-http detect it."""

    AUTO = "auto"
    ASGI = "asgi"
    WSGI = "wsgi"


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
    tls: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_pass: str | None = None
    redis: str | None = None
    pid: Path | None = None
    verbosity: int = logging.INFO
    interface: Interface = Interface.AUTO
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
        missing = self._unavailable()
        if missing:
            flag, feature = missing[0]
            raise UsageError(
                f"{self._source(flag)}: {feature} not available in this version "
                "of iodine"
            )

    def _unavailable(self) -> list[tuple[str, str]]:
        """``(option, feature)`` for each unbuilt feature asked for, in flag order."""
        wanted: list[tuple[str, str]] = []
        if self.workers is not None and self.workers > 1:
            wanted.append(("workers", "worker processes are"))
        if self.public is not None:
            wanted.append(("public", "serving static files is"))
        if self.max_message_kib is not None:
            wanted.append(("max_message_kib", "WebSockets are"))
        if self.ping is not None:
            wanted.append(("ping", "WebSockets are"))
        if self.tls:
            wanted.append(("tls", "TLS is"))
        for name in ("tls_cert", "tls_key", "tls_pass"):
            if getattr(self, name) is not None:
                wanted.append((name, "TLS is"))
        if self.redis is not None:
            wanted.append(("redis", "Redis pub/sub is"))
        return wanted

    def _source(self, name: str) -> str:
        """How the user set option ``name``: its flags, or ``VAR=value``."""
        flags = FLAGS[name]
        if name in self.env:
            return f"{self.env[name]} (read as {flags})"
        if name == "workers":
            return f"{flags} {self.workers}"
        return flags

    def listen_options(self) -> dict[str, Any]:
        """Keyword arguments for ``iodine.listen(service="http", ...)``, in bytes."""
        options: dict[str, Any] = {"interface": self.interface.value}
        if self.log:
            options["access_log"] = True
        given: dict[str, Any] = {
            "keep_alive": self.keep_alive,
            "max_body": _scaled(self.max_body_mib, MIB),
            "max_header_bytes": _scaled(self.max_header_kib, KIB),
            "max_header_line": _scaled(self.max_header_line_kib, KIB),
            "max_headers": self.max_headers,
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


# How each option is spelled on the command line, for error messages.
FLAGS = {
    "workers": "-w/--workers",
    "public": "-www/--public",
    "max_message_kib": "-maxms",
    "ping": "-ping",
    "tls": "-tls",
    "tls_cert": "-tls-cert",
    "tls_key": "-tls-key",
    "tls_pass": "-tls-pass",
    "redis": "-r/--redis",
}
