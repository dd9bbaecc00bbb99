"""Running ``iodine serve``: from parsed options to a served application.

The steps run in the order that fails fastest and leaves nothing behind: refuse
unbuilt features, set up logging, check the settings, import the application,
open the listener (which binds at once, so a taken port fails here), write the
pid file, then hand over to ``iodine.run()`` until SIGINT or SIGTERM.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import iodine
from iodine.cli.apps import load_app
from iodine.cli.config import ServeOptions
from iodine.cli.errors import RuntimeFailure, UsageError
from iodine.core.services import find_service

logger = logging.getLogger("iodine.cli")


def serve(options: ServeOptions) -> None:
    """Serve ``options.app`` over HTTP until iodine stops.

    Raises:
        UsageError: the command line asks for something impossible.
        RuntimeFailure: the application or the listener could not start.
    """
    # Options whose feature does not exist yet stop everything, before any
    # import or bind, so they are never silently ignored.
    options.check_available()
    if options.app is None:
        raise UsageError(
            "missing APP: give module:attr or path/to/file.py[:attr] "
            "(see 'iodine serve --help')"
        )
    # Checked before the application is imported: a wrong combination of
    # options is the command line's fault, whatever the application does.
    listen_options = options.listen_options()

    configure_logging(options)
    _apply_settings(options)
    loaded = load_app(options.app)

    # The HTTP service comes from iodine-http; without it there is nothing to
    # serve with, which is an installation problem rather than a usage one.
    try:
        find_service("http")
    except ValueError as exc:
        raise RuntimeFailure(str(exc)) from None

    listener = _listen(loaded.app, options, listen_options)

    # Logged once iodine runs, after its start-up line, when its log handler
    # is in place.
    iodine.on_state(
        "on_start",
        lambda: logger.info("Serving %s on %s.", loaded.label, listener.url),
    )
    with _pid_file(options.pid):
        iodine.run()


def configure_logging(options: ServeOptions) -> None:
    """Apply ``-V`` to iodine's loggers and ``-v`` to the access log."""
    logging.getLogger("iodine").setLevel(options.verbosity)

    # -v asks for the access log explicitly, so it shows even when -V has
    # quietened the rest of iodine's lines.
    if options.log:
        logging.getLogger("iodine.access").setLevel(logging.INFO)


def _apply_settings(options: ServeOptions) -> None:
    if options.threads is not None:
        iodine.settings.threads = options.threads
    if options.workers is not None:
        iodine.settings.workers = options.workers
    try:
        iodine.settings.validate()
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _listen(
    app: object, options: ServeOptions, listen_options: dict[str, Any]
) -> iodine.Listener:
    try:
        return iodine.listen(
            service="http",
            handler=app,
            port=options.port,
            address=options.bind,
            **listen_options,
        )
    except iodine.ListenError as exc:
        message = exc.strerror or str(exc)
        if exc.errno == errno.EADDRINUSE:
            message += " (another server holds it; choose a port with -p)"
        raise RuntimeFailure(message, exc) from None
    except (TypeError, ValueError) as exc:
        # iodine-http rejects option values it cannot work with.
        raise UsageError(str(exc)) from None


@contextlib.contextmanager
def _pid_file(path: Path | None) -> Iterator[None]:
    """Write our pid to ``path`` while serving; remove it when done."""
    if path is None:
        yield
        return
    pid = f"{os.getpid()}\n"
    try:
        path.write_text(pid)
    except OSError as exc:
        raise RuntimeFailure(
            f"cannot write the pid file {os.fspath(path)!r}: {exc.strerror or exc}"
        ) from None
    try:
        yield
    finally:
        # Leave the file alone if another process has taken it over since.
        with contextlib.suppress(OSError):
            if path.read_text() == pid:
                path.unlink()
