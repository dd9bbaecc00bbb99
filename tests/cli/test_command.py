"""The ``iodine`` command's answers that need no server: version, help, errors.

Each error must be one line on stderr with the right exit code (2 for the
command line, 1 for a failure while starting) and never a traceback.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import (
    ASGI_APP,
    Result,
    clean_env,
    run_iodine,
    write_app,
)

USAGE = 2
RUNTIME = 1


def assert_one_line_error(result: Result, code: int, *fragments: str) -> str:
    assert result.code == code, result
    assert "Traceback" not in result.stderr, result.stderr
    assert len(result.error_lines) == 1, result.stderr
    line = result.error_lines[0]
    assert line.startswith("iodine: ")
    for fragment in fragments:
        assert fragment in line, line
    return line


def test_version_prints_the_versions() -> None:
    result = run_iodine("--version")

    assert result.code == 0, result
    assert re.match(r"iodine \d+\.\d+\.\d+ \(iodine-core \d", result.stdout)
    assert "iodine-cli 0.1.0" in result.stdout
    assert result.stderr == ""


def test_python_dash_m_is_the_same_command() -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "iodine.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout == run_iodine("--version").stdout


@pytest.mark.parametrize("args", [(), ("--help",), ("-h",)])
def test_bare_command_and_help_list_serve(args: tuple[str, ...]) -> None:
    result = run_iodine(*args)

    assert result.code == 0, result
    assert "serve" in result.stdout
    assert "--version" in result.stdout


# Every flag `iodine serve --help` must show, in both spellings where both exist.
SERVE_FLAGS = [
    "--port", "-p", "--bind", "-b", "--threads", "-t", "--workers", "-w",
    "--public", "-www", "--log", "-v", "--keep-alive", "-k", "-maxbd",
    "--max-body", "-maxhd", "--max-header-size", "-maxms", "-ping", "-tls",
    "-tls-cert", "-tls-key", "-tls-pass", "--redis", "-r", "-pid", "--pid",
    "--verbosity", "-V", "--interface", "--forwarded-allow-ips", "--lifespan",
    "--root-path", "--server-header", "--max-header-line", "--max-headers",
    "--header-timeout", "--max-connections", "--fd-reserve",
]  # fmt: skip


@pytest.mark.parametrize("args", [("serve", "--help"), ("serve",)])
def test_serve_help_explains_every_option(args: tuple[str, ...]) -> None:
    # A wide terminal keeps rich from wrapping a flag across two lines.
    result = run_iodine(*args, env=clean_env(COLUMNS="200", TERM="dumb"))

    assert result.code == 0, result
    words = set(re.findall(r"(?<![\w-])--?[\w-]+", result.stdout))
    missing = [flag for flag in SERVE_FLAGS if flag not in words]
    assert not missing, result.stdout
    for env in ("PORT", "THREADS", "WEB_CONCURRENCY", "WORKERS", "IODINE_REDIS_URL"):
        assert env in result.stdout
    assert "module:attr" in result.stdout


@pytest.mark.parametrize(
    ("args", "env", "names"),
    [
        (("-w", "2"), {}, "-w/--workers 2"),
        (("--workers", "3"), {}, "-w/--workers 3"),
        ((), {"WEB_CONCURRENCY": "4"}, "WEB_CONCURRENCY=4"),
        ((), {"WORKERS": "5"}, "WORKERS=5"),
        (("-www", "public"), {}, "-www/--public"),
        (("--public", "public"), {}, "-www/--public"),
        (("-tls",), {}, "-tls"),
        (("-tls-cert", "cert.pem"), {}, "-tls-cert"),
        (("-tls-key", "key.pem"), {}, "-tls-key"),
        (("-tls-pass", "secret"), {}, "-tls-pass"),
        (("-r", "redis://localhost"), {}, "-r/--redis"),
        (("--redis", "redis://localhost"), {}, "-r/--redis"),
        ((), {"IODINE_REDIS_URL": "redis://:pw@localhost"}, "IODINE_REDIS_URL"),
    ],
)
def test_unbuilt_features_are_refused_by_name(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], names: str
) -> None:
    write_app(tmp_path, "asgi_app.py", ASGI_APP)

    result = run_iodine(
        "serve", "asgi_app:app", *args, cwd=tmp_path, env=clean_env(**env)
    )

    line = assert_one_line_error(result, USAGE, names, "not available in this version")
    assert "secret" not in line
    assert ":pw@" not in line


def test_static_files_alone_need_no_app_but_are_refused() -> None:
    result = run_iodine("serve", "-www", "public")

    assert_one_line_error(result, USAGE, "-www/--public", "static files")


def test_one_worker_is_not_refused(tmp_path: Path) -> None:
    # -w 1 is what every server runs today; it must reach the app loading step.
    result = run_iodine("serve", "missing_module:app", "-w", "1", cwd=tmp_path)

    assert_one_line_error(result, USAGE, "cannot find the module 'missing_module'")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("-p", "http"), "'-p' / '--port'"),
        (("--port", "70000"), "'-p' / '--port'"),
        (("-t", "0"), "'-t' / '--threads'"),
        (("-k", "soon"), "'-k' / '--keep-alive'"),
        (("-maxbd", "0"), "'-maxbd' / '--max-body'"),
        (("--max-body", "lots"), "'-maxbd' / '--max-body'"),
        (("-maxhd", "-1"), "'-maxhd' / '--max-header-size'"),
        (("-V", "loud"), "'loud' is not a log level"),
        (("--interface", "cgi"), "--interface"),
        (("--no-such-option",), "No such option"),
    ],
)
def test_bad_values_are_one_line_usage_errors(
    tmp_path: Path, args: tuple[str, ...], fragment: str
) -> None:
    write_app(tmp_path, "asgi_app.py", ASGI_APP)

    result = run_iodine("serve", "asgi_app:app", *args, cwd=tmp_path)

    assert_one_line_error(result, USAGE, fragment)


def test_bad_port_from_the_environment_is_a_usage_error(tmp_path: Path) -> None:
    write_app(tmp_path, "asgi_app.py", ASGI_APP)

    result = run_iodine(
        "serve", "asgi_app:app", cwd=tmp_path, env=clean_env(PORT="eighty")
    )

    assert_one_line_error(result, USAGE, "PORT")


def test_missing_app_is_a_usage_error() -> None:
    result = run_iodine("serve", "-p", "3000")

    assert_one_line_error(result, USAGE, "missing APP")


@pytest.mark.parametrize(
    ("app", "fragment"),
    [
        ("no_such_module:app", "cannot find the module 'no_such_module'"),
        ("no_such_package.web:app", "cannot find the module 'no_such_package.web'"),
        ("asgi_app:nothing", "'asgi_app' has no attribute 'nothing'"),
        ("asgi_app:app.missing", "has no attribute 'app.missing'"),
        ("plain:", "is not an attribute name"),
        ("plain", "has no attribute 'app' or 'application'"),
        ("plain:VALUE", "plain:VALUE is a int, not an ASGI or WSGI application"),
        ("missing.py", "no such file"),
        ("sub/missing.py:app", "no such file"),
        # A folder imports as a namespace package, which has no app.
        ("sub", "'sub' has no attribute 'app' or 'application'"),
        ("./sub", "a folder, not a file"),
        ("not a module", "neither a module name nor a .py file"),
        ("", "APP is empty"),
    ],
)
def test_bad_app_is_a_one_line_usage_error(
    tmp_path: Path, app: str, fragment: str
) -> None:
    write_app(tmp_path, "asgi_app.py", ASGI_APP)
    write_app(tmp_path, "plain.py", "VALUE = 1\n")
    (tmp_path / "sub").mkdir()

    result = run_iodine("serve", app, cwd=tmp_path)

    assert_one_line_error(result, USAGE, fragment)


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("raise RuntimeError('database is down')\n", "RuntimeError: database is down"),
        ("import no_such_dependency\n", "ModuleNotFoundError"),
        ("def app(:\n", "SyntaxError"),
    ],
)
@pytest.mark.parametrize("form", ["broken:app", "broken.py"])
def test_app_that_raises_on_import_is_a_runtime_error(
    tmp_path: Path, source: str, fragment: str, form: str
) -> None:
    write_app(tmp_path, "broken.py", source)

    result = run_iodine("serve", form, cwd=tmp_path)

    assert_one_line_error(result, RUNTIME, "broken", fragment, "-V debug")


def test_debug_verbosity_shows_the_import_traceback(tmp_path: Path) -> None:
    write_app(tmp_path, "broken.py", "raise RuntimeError('database is down')\n")

    result = run_iodine("serve", "broken:app", "-V", "debug", cwd=tmp_path)

    assert result.code == RUNTIME
    assert result.error_lines[0].startswith("iodine: error: importing 'broken'")
    assert "Traceback (most recent call last)" in result.stderr
    assert 'broken.py", line 1' in result.stderr
