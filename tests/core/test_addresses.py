"""Turning listen/connect arguments into endpoints."""

from __future__ import annotations

import pytest

from iodine.core.addresses import Endpoint, resolve
from iodine.core.settings import Settings


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, Endpoint("tcp", host="127.0.0.1", port=3000)),
        ({"port": "8080"}, Endpoint("tcp", host="127.0.0.1", port=8080)),
        ({"address": "0.0.0.0", "port": 1}, Endpoint("tcp", host="0.0.0.0", port=1)),
        ({"address": "/run/app.sock"}, Endpoint("unix", path="/run/app.sock")),
        ({"address": "app.sock"}, Endpoint("unix", path="app.sock")),
        ({"url": "tcp://[::1]:9000"}, Endpoint("tcp", host="::1", port=9000)),
        ({"url": "unix:///run/app.sock"}, Endpoint("unix", path="/run/app.sock")),
        (
            {"url": "raw://localhost:7000"},
            Endpoint("tcp", host="localhost", port=7000, service="raw"),
        ),
        (
            {"url": "http://127.0.0.1:8000"},
            Endpoint("tcp", host="127.0.0.1", port=8000, service="http"),
        ),
    ],
)
def test_resolve(kwargs: dict[str, object], expected: Endpoint) -> None:
    assert resolve(**kwargs) == expected  # type: ignore[arg-type]


def test_url_of_ipv6_endpoint() -> None:
    assert Endpoint("tcp", host="::1", port=1).url == "tcp://[::1]:1"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "gopher://x:1"}, "unknown URL scheme"),
        ({"port": "eighty"}, "port must be a number"),
        ({"port": 70000}, "between 0 and 65535"),
        ({"url": "unix://"}, "no socket path"),
    ],
)
def test_resolve_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("threads", 0, "threads must be"),
        ("workers", 0, "workers must be"),
        ("callbacks", "fibers", "callbacks must be"),
        ("max_pending", 10, "max_pending"),
        ("shutdown_timeout", -1, "shutdown_timeout"),
    ],
)
def test_settings_validation(field: str, value: object, message: str) -> None:
    settings = Settings()
    setattr(settings, field, value)
    with pytest.raises(ValueError, match=message):
        settings.validate()
