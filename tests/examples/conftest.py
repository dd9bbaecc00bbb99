"""The ``iodine serve`` subprocess fixtures of the CLI tests, shared."""

from __future__ import annotations

from tests.cli.conftest import Server, StartServer, free_port, needs_http, serve

__all__ = ["Server", "StartServer", "free_port", "needs_http", "serve"]
