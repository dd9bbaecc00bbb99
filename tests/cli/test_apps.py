"""Loading the application APP names, in-process."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from iodine.cli.apps import load_app, split_spec
from iodine.cli.errors import RuntimeFailure, UsageError


@pytest.fixture
def project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_imports: None
) -> Path:
    """A temporary current directory; modules imported from it are forgotten."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("main:app", ("main", "app")),
        ("main", ("main", "")),
        ("pkg.web:api.app", ("pkg.web", "api.app")),
        ("site/app.py", ("site/app.py", "")),
        ("site/app.py:application", ("site/app.py", "application")),
        (" main:app ", ("main", "app")),
    ],
)
def test_split_spec(spec: str, expected: tuple[str, str]) -> None:
    assert split_spec(spec) == expected


def test_module_from_the_current_directory(project: Path) -> None:
    (project / "cwd_app.py").write_text("def app(environ, start): pass\n")

    loaded = load_app("cwd_app:app")

    assert loaded.label == "cwd_app:app"
    assert callable(loaded.app)


def test_application_is_the_fallback_name(project: Path) -> None:
    (project / "fallback_app.py").write_text("def application(e, s): pass\n")

    assert load_app("fallback_app").label == "fallback_app:application"


def test_app_is_preferred_to_application(project: Path) -> None:
    (project / "both_app.py").write_text(
        "def app(e, s): pass\ndef application(e, s): pass\n"
    )

    assert load_app("both_app").label == "both_app:app"


def test_dotted_attribute_in_a_package(project: Path) -> None:
    (project / "webpkg").mkdir()
    (project / "webpkg" / "__init__.py").write_text("")
    (project / "webpkg" / "server.py").write_text(
        "class Api:\n    def app(self, e, s): pass\napi = Api()\n"
    )

    loaded = load_app("webpkg.server:api.app")

    assert loaded.label == "webpkg.server:api.app"


def test_file_path_sees_its_neighbours(project: Path) -> None:
    site = project / "site"
    site.mkdir()
    (site / "helpers_for_app.py").write_text("GREETING = 'hi'\n")
    (site / "file_app.py").write_text(
        "from helpers_for_app import GREETING\n"
        "def app(environ, start): return GREETING\n"
    )

    loaded = load_app("site/file_app.py:app")

    assert loaded.app(None, None) == "hi"  # type: ignore[operator]  # an object


def test_file_named_like_an_imported_module_does_not_replace_it(
    project: Path,
) -> None:
    (project / "sub").mkdir()
    (project / "sub" / "json.py").write_text("def app(environ, start): pass\n")
    import json

    load_app("sub/json.py")

    assert sys.modules["json"] is json


def test_module_that_raises_keeps_the_exception(project: Path) -> None:
    (project / "raising_app.py").write_text("raise KeyError('DATABASE_URL')\n")

    with pytest.raises(RuntimeFailure) as failure:
        load_app("raising_app:app")

    assert isinstance(failure.value.detail, KeyError)
    assert "KeyError: 'DATABASE_URL'" in str(failure.value)


def test_attribute_that_is_none_is_not_an_app(project: Path) -> None:
    (project / "none_app.py").write_text("app = None\n")

    with pytest.raises(UsageError, match="is a NoneType, not an ASGI or WSGI"):
        load_app("none_app")
