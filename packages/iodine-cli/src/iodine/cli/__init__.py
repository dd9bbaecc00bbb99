"""The ``iodine`` command: serve an ASGI or WSGI application from a shell.

``iodine serve app:app`` loads the application, opens an HTTP listener through
``iodine.listen(service="http", ...)`` and runs the reactor until SIGINT or
SIGTERM. The command lives in :mod:`iodine.cli.main`; what each option means is
in the repository's ``docs/cli.md``.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
