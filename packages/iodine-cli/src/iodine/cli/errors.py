"""The errors the command reports as one line on stderr, and their exit codes.

Exit codes follow click's (and so uvicorn's) convention: 2 when the command line
asks for something impossible, 1 when a correct command fails while running.
"""

from __future__ import annotations

USAGE = 2
RUNTIME = 1


class CommandError(Exception):
    """A failure the user can act on; ``str(error)`` is the whole message."""

    exit_code = RUNTIME


class UsageError(CommandError):
    """The command line is wrong: a bad value, a missing APP, an unbuilt feature."""

    exit_code = USAGE


class RuntimeFailure(CommandError):
    """A correct command line that failed: the port is taken, the app raised.

    Attributes:
        detail: The exception behind the failure, shown in full with ``-V debug``.
    """

    exit_code = RUNTIME

    def __init__(self, message: str, detail: BaseException | None = None) -> None:
        super().__init__(message)
        self.detail = detail
