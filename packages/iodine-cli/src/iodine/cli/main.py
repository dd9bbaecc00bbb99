"""The ``iodine`` command: a Typer application and the error policy around it.

Every failure the user can act on ends as one line on stderr and an exit code:
2 for a command line that cannot work (click's usage errors included), 1 for a
correct one that failed while starting or running. Click's own multi-line usage
report is replaced by that one line, so scripts and humans read the same thing.
A traceback is shown only with ``-V debug``.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import traceback
from collections.abc import Sequence
from importlib import metadata
from typing import Annotated, NoReturn

import typer

from iodine.cli import __version__
from iodine.cli.errors import RUNTIME, USAGE, CommandError, RuntimeFailure
from iodine.cli.serve import serve_command

PROG = "iodine"

app = typer.Typer(
    name=PROG,
    help="iodine for Python: a fast HTTP server for ASGI and WSGI applications.",
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("serve")(serve_command)

# Typer 0.12 raises click's exceptions, later releases those of the copy of
# click they vendor. typer.BadParameter is public in both, and its bases are the
# classes to catch, whichever click is in use.
_CLICK_BASES = {cls.__name__: cls for cls in typer.BadParameter.__mro__}
ClickException: type[Exception] = _CLICK_BASES["ClickException"]
ClickUsageError: type[Exception] = _CLICK_BASES["UsageError"]


def _show_version(value: bool) -> None:
    if value:
        typer.echo(version_line())
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            help="Print the versions of iodine and its packages, then exit.",
        ),
    ] = False,
) -> None:
    """iodine for Python: a fast HTTP server for ASGI and WSGI applications."""


def version_line() -> str:
    """``iodine 0.1.0 (iodine-core 0.1.0, ...) on CPython 3.13.0 Linux``."""
    parts = []
    for package in ("iodine-core", "iodine-http", "iodine-cli"):
        try:
            parts.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{package} not installed")
    return (
        f"{PROG} {__version__} ({', '.join(parts)}) on "
        f"{platform.python_implementation()} {platform.python_version()} "
        f"{platform.system()}"
    )


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the ``iodine`` command with ``argv`` (default ``sys.argv[1:]``); exit."""
    args = list(sys.argv[1:] if argv is None else argv)

    # A bare `iodine` or `iodine serve` asks what the command can do. Answered
    # here rather than with click's no_args_is_help, whose exit code and output
    # changed between click releases.
    if args in ([], ["serve"]):
        args.append("--help")

    command = typer.main.get_command(app)
    try:
        result = command.main(
            args=args,
            prog_name=PROG,
            standalone_mode=False,
        )
    except CommandError as error:
        _report(str(error), error.exit_code)
        if isinstance(error, RuntimeFailure) and error.detail is not None:
            _debug_traceback(error.detail)
        sys.exit(error.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        # Ctrl-C before the server runs (while the app imports): no traceback.
        # Older click turns it into Abort, newer typer into exit code 130.
        sys.exit(130)
    except ClickException as error:
        message = error.format_message()  # type: ignore[attr-defined]  # a ClickException
        variable = _environment_source(error)
        if variable and variable not in message:
            message += f" (read from the environment variable {variable})"
        if isinstance(error, ClickUsageError):
            message += f" (see '{_command_path(error)} --help')"
        code: int = error.exit_code  # type: ignore[attr-defined]  # a ClickException
        _report(message, code)
        sys.exit(code)
    except Exception as error:  # anything unforeseen still ends in one line
        _report(
            f"unexpected {type(error).__name__}: {error} "
            "(run with -V debug for the traceback)",
            RUNTIME,
        )
        _debug_traceback(error)
        sys.exit(RUNTIME)
    # --help and --version end with click's Exit, which non-standalone mode
    # turns into its exit code; a command that returns gives None.
    sys.exit(result if isinstance(result, int) else 0)


def _report(message: str, code: int) -> None:
    """Print the one line; a message that spans lines is joined into one."""
    label = "usage error" if code == USAGE else "error"
    text = " ".join(line.strip() for line in message.splitlines() if line.strip())
    typer.echo(f"{PROG}: {label}: {text}", err=True)


def _debug_traceback(error: BaseException) -> None:
    if logging.getLogger("iodine").isEnabledFor(logging.DEBUG):
        traceback.print_exception(error, file=sys.stderr)


def _environment_source(error: Exception) -> str | None:
    """The variable a rejected value came from, if it came from the environment."""
    param = getattr(error, "param", None)
    ctx = getattr(error, "ctx", None)
    if param is None or ctx is None or not param.name:
        return None
    source = ctx.get_parameter_source(param.name)
    if source is None or source.name != "ENVIRONMENT":
        return None
    names = [param.envvar] if isinstance(param.envvar, str) else param.envvar or []
    return next((name for name in names if os.environ.get(name)), None)


def _command_path(error: Exception) -> str:
    ctx = getattr(error, "ctx", None)
    return getattr(ctx, "command_path", PROG) if ctx is not None else PROG
