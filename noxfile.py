"""Test, lint, type-check and benchmark every iodine package together.

``nox`` runs the default sessions: ``tests`` on every CPython from 3.11 up that
the machine has, then ``lint`` and ``typecheck``. ``nox -s bench`` runs the
benchmark suite against its peers.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).parent

# iodine supports CPython 3.11 and newer. The tests run on each of those the
# machine has (pyenv's shims make them visible), so a newer release is picked
# up without editing this file, and a missing one is not an error.
PYTHONS = [
    f"3.{minor}" for minor in range(11, 20) if shutil.which(f"python3.{minor}")
] or ["3"]

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True


def packages() -> list[str]:
    """Every package folder, iodine-core first (the others depend on it)."""
    found = sorted(
        path.parent.name for path in (ROOT / "packages").glob("*/pyproject.toml")
    )
    return sorted(found, key=lambda name: name != "iodine-core")


def install_packages(session: nox.Session) -> None:
    # All in one command, so the meta package's extras resolve to these folders
    # rather than to the package index.
    args: list[str] = []
    for name in packages():
        args += ["-e", f"packages/{name}"]
    session.install(*args)


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite, with real sockets, clients and server processes."""
    install_packages(session)
    session.install("-r", "tests/requirements.txt")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over every package."""
    install_packages(session)
    session.install("mypy", "-r", "tests/requirements.txt")
    # The meta package ``iodine`` has no code of its own.
    sources = [
        f"packages/{name}/src"
        for name in packages()
        if (ROOT / "packages" / name / "src").is_dir()
    ]
    session.run("mypy", "--strict", *sources)


@nox.session
def autobahn(session: nox.Session) -> None:
    """Every Autobahn|Testsuite case iodine can take, played by kosoku.

    Sections 1-10 against the server (a native handler and an ASGI app) and
    against the client, 12-13 (permessage-deflate) against the server with
    compression on; then the verdicts counted per run. About a quarter of an
    hour on two cores. ``nox -s autobahn -- --only client`` picks runs by
    label; the reports stay in the session's tmp folder.
    """
    install_packages(session)
    session.install("-r", "tests/requirements.txt")
    reports = Path(session.create_tmp()) / "autobahn"
    session.run(
        "python",
        "-m",
        "tests.ws.autobahn_server",
        "all",
        "-o",
        str(reports),
        *session.posargs,
    )


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark suite: iodine against its peers, same run, pinned cores."""
    install_packages(session)
    session.install("-r", "bench/requirements.txt")
    session.run("python", "-m", "bench", *session.posargs)
