"""How the command line maps onto ``ServeOptions``, iodine's settings and
``iodine.listen`` options, checked in-process (no server, no subprocess).

The spelling tests drive the real Typer command through ``iodine.cli.main.main``
with the serving step replaced, so they see exactly what a user's flags become.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import iodine
from iodine.cli import main as cli_main
from iodine.cli import runner
from iodine.cli import serve as serve_module
from iodine.cli.config import Interface, Lifespan, ServeOptions, parse_verbosity
from iodine.cli.errors import RuntimeFailure, UsageError
from tests.cli.conftest import COMMAND_ENV


@pytest.fixture
def parse(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``parse(*args)`` runs ``iodine serve ARGS`` and returns its ServeOptions."""
    for name in COMMAND_ENV:
        monkeypatch.delenv(name, raising=False)
    seen: list[ServeOptions] = []
    monkeypatch.setattr(serve_module, "serve", seen.append)

    def parse(*args: str) -> ServeOptions:
        with pytest.raises(SystemExit) as exit_info:
            cli_main.main(["serve", "app:app", *args])
        assert exit_info.value.code == 0
        return seen.pop()

    return parse


# ((short spelling, long spelling), value, ServeOptions field, expected value)
SPELLINGS = [
    (("-p", "--port"), "8123", "port", 8123),
    (("-b", "--bind"), "0.0.0.0", "bind", "0.0.0.0"),
    (("-t", "--threads"), "3", "threads", 3),
    (("-w", "--workers"), "1", "workers", 1),
    (("-www", "--public"), "site", "public", Path("site")),
    (("-k", "--keep-alive"), "7", "keep_alive", 7),
    (("-maxbd", "--max-body"), "2", "max_body_mib", 2),
    (("-maxhd", "--max-header-size"), "16", "max_header_kib", 16),
    (("-r", "--redis"), "redis://localhost", "redis", "redis://localhost"),
    (("-pid", "--pid"), "iodine.pid", "pid", Path("iodine.pid")),
    (("-V", "--verbosity"), "debug", "verbosity", logging.DEBUG),
]


@pytest.mark.parametrize(("flags", "value", "name", "expected"), SPELLINGS)
def test_both_spellings_set_the_same_option(
    parse: Any, flags: tuple[str, str], value: str, name: str, expected: object
) -> None:
    short, long = flags
    assert getattr(parse(short, value), name) == expected
    assert getattr(parse(long, value), name) == expected
    assert getattr(parse(f"{long}={value}"), name) == expected


@pytest.mark.parametrize("flag", ["-v", "--log"])
def test_log_flag_turns_the_access_log_on(parse: Any, flag: str) -> None:
    assert parse(flag).log is True
    assert parse().log is False


def test_short_flags_and_iodine_words_do_not_collide(parse: Any) -> None:
    # -w and -www, -p and -pid, -t and -tls share first letters.
    options = parse("-w", "1", "-www", "pub", "-p", "81", "-pid", "x.pid", "-t", "2")

    assert (options.workers, options.public) == (1, Path("pub"))
    assert (options.port, options.pid) == (81, Path("x.pid"))
    assert options.threads == 2
    assert options.tls is False


def test_attached_short_values_still_work(parse: Any) -> None:
    options = parse("-p8124", "-t4")

    assert (options.port, options.threads) == (8124, 4)


def test_iodine_only_flags(parse: Any) -> None:
    options = parse(
        "-maxms", "64", "-ping", "25", "-tls", "-tls-cert", "c.pem",
        "-tls-key", "k.pem", "-tls-pass", "pw",
    )  # fmt: skip

    assert (options.max_message_kib, options.ping, options.tls) == (64, 25, True)
    assert (options.tls_cert, options.tls_key) == (Path("c.pem"), Path("k.pem"))
    assert options.tls_pass == "pw"


def test_defaults(parse: Any) -> None:
    options = parse()

    assert options.port == 3000
    assert options.bind is None
    assert options.threads is None
    assert options.workers is None
    assert options.verbosity == logging.INFO
    assert options.interface is Interface.AUTO
    assert options.env == {}


@pytest.mark.parametrize(
    ("setting", "name", "expected"),
    [
        (("PORT", "8125"), "port", 8125),
        (("THREADS", "5"), "threads", 5),
        (("WEB_CONCURRENCY", "1"), "workers", 1),
        (("WORKERS", "1"), "workers", 1),
        (("IODINE_REDIS_URL", "redis://r"), "redis", "redis://r"),
        (("FORWARDED_ALLOW_IPS", "10.0.0.1"), "forwarded_allow_ips", "10.0.0.1"),
    ],
)
def test_environment_variables(
    parse: Any,
    monkeypatch: pytest.MonkeyPatch,
    setting: tuple[str, str],
    name: str,
    expected: object,
) -> None:
    monkeypatch.setenv(*setting)

    options = parse()

    assert getattr(options, name) == expected
    assert name in options.env


def test_command_line_beats_the_environment(
    parse: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORT", "8126")

    options = parse("-p", "8127")

    assert options.port == 8127
    assert "port" not in options.env


def test_web_concurrency_wins_over_workers(
    parse: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    monkeypatch.setenv("WORKERS", "1")

    options = parse()

    assert options.workers == 4
    assert options.env["workers"] == "WEB_CONCURRENCY=4"


def test_listen_options_are_in_bytes_and_only_what_was_given(parse: Any) -> None:
    options = parse(
        "-maxbd", "2", "-maxhd", "16", "-k", "5", "-v", "--interface", "wsgi",
        "--lifespan", "off", "--forwarded-allow-ips", "10.0.0.1,10.0.0.2",
        "--root-path", "/api", "--max-header-line", "4", "--max-headers", "50",
        "--header-timeout", "2.5", "--max-connections", "100",
        "--fd-reserve", "32", "--server-header", "iodine", "-maxms", "64",
        "-ping", "0", "--ws-compression", "--ws-window-bits", "12",
        "--ws-mem-level", "9",
    )  # fmt: skip

    assert options.listen_options() == {
        "interface": "wsgi",
        "lifespan": "off",
        "access_log": True,
        "max_body": 2 * 1024 * 1024,
        "max_header_bytes": 16 * 1024,
        "max_header_line": 4 * 1024,
        "max_headers": 50,
        "header_timeout": 2.5,
        "keep_alive": 5,
        "max_connections": 100,
        "fd_reserve": 32,
        "forwarded_allow_ips": "10.0.0.1,10.0.0.2",
        "root_path": "/api",
        "server_header": "iodine",
        "max_message": 64 * 1024,
        "ping": 0,
        "websocket_compression": True,
        "websocket_window_bits": 12,
        "websocket_mem_level": 9,
    }
    assert parse().listen_options() == {"interface": "auto", "lifespan": "auto"}


@pytest.mark.parametrize("flag", ["--ws-window-bits", "--ws-mem-level"])
def test_compression_tuning_without_compression_is_refused(
    parse: Any, flag: str
) -> None:
    options = parse(flag, "9")
    with pytest.raises(UsageError, match=f"^{flag} tunes compression: add --ws-c"):
        options.listen_options()


@pytest.mark.parametrize(
    "args",
    [
        ["--ws-window-bits", "8"],
        ["--ws-window-bits", "16"],
        ["--ws-mem-level", "0"],
        ["--ws-mem-level", "10"],
    ],
)
def test_compression_tuning_out_of_zlibs_range_is_a_usage_error(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main.main(["serve", "app:app", "--ws-compression", *args])
    assert exit_info.value.code == 2
    assert args[0] in capsys.readouterr().err


def test_choices_ignore_case(parse: Any) -> None:
    options = parse("--interface", "ASGI", "--lifespan", "On")

    assert (options.interface, options.lifespan) == (Interface.ASGI, Lifespan.ON)


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("debug", logging.DEBUG),
        ("INFO", logging.INFO),
        ("warn", logging.WARNING),
        ("error", logging.ERROR),
        ("critical", logging.CRITICAL),
        ("5", logging.DEBUG),
        ("4", logging.INFO),
        ("3", logging.WARNING),
        ("2", logging.ERROR),
        ("1", logging.CRITICAL),
        ("0", logging.CRITICAL + 10),
    ],
)
def test_verbosity_takes_names_and_iodine_numbers(text: str, level: int) -> None:
    assert parse_verbosity(text) == level


@pytest.mark.parametrize("text", ["6", "loud", "", "-1"])
def test_verbosity_rejects_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="is not a log level"):
        parse_verbosity(text)


def test_the_first_unbuilt_feature_is_named() -> None:
    options = ServeOptions(app="a:app", redis="redis://x", public=Path("p"))

    with pytest.raises(UsageError, match=r"^-www/--public: serving static files"):
        options.check_available()


# The serving step, without the reactor: settings, the service check, pid file.


@pytest.fixture
def fresh_settings(
    monkeypatch: pytest.MonkeyPatch, isolated_imports: None
) -> Iterator[iodine.Settings]:
    """Settings, log levels and imports that runner.serve changes, restored after."""
    settings = iodine.Settings()
    monkeypatch.setattr(iodine, "settings", settings)
    loggers = [logging.getLogger(name) for name in ("iodine", "iodine.access")]
    levels = [logger.level for logger in loggers]
    yield settings
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def test_threads_and_workers_reach_iodine_settings(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fresh_settings: iodine.Settings,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "threads_app.py").write_text("def app(environ, start): pass\n")
    monkeypatch.setattr(runner, "find_service", _no_http)

    with pytest.raises(RuntimeFailure, match="needs the iodine-http package"):
        runner.serve(ServeOptions(app="threads_app:app", threads=3, workers=1))

    assert (fresh_settings.threads, fresh_settings.workers) == (3, 1)


def test_missing_http_service_is_a_runtime_failure(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fresh_settings: iodine.Settings,
) -> None:
    (tmp_path / "http_app.py").write_text("def app(environ, start): pass\n")
    monkeypatch.setattr(runner, "find_service", _no_http)

    with pytest.raises(RuntimeFailure) as failure:
        runner.serve(ServeOptions(app=str(tmp_path / "http_app.py")))

    assert failure.value.exit_code == 1
    assert "pip install iodine-http" in str(failure.value)


def _no_http(name: str) -> Any:
    raise ValueError(
        f"the {name!r} service needs the iodine-http package: pip install iodine-http"
    )


def test_pid_file_is_removed_only_if_still_ours(tmp_path: Path) -> None:
    path = tmp_path / "iodine.pid"

    with runner._pid_file(path):
        assert path.read_text().strip().isdigit()
    assert not path.exists()

    with runner._pid_file(path):
        path.write_text("12345\n")  # another server took the file over
    assert path.read_text() == "12345\n"


def test_unwritable_pid_file_is_a_runtime_failure(tmp_path: Path) -> None:
    path = tmp_path / "no-such-folder" / "iodine.pid"

    with pytest.raises(RuntimeFailure, match="cannot write the pid file"):  # noqa: SIM117
        with runner._pid_file(path):
            pass
