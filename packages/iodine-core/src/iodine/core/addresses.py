"""Where to listen or connect: ports, host addresses, Unix socket paths, URLs."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

# Ruby iodine listens on port 3000 unless told otherwise; so does ``iodine serve``.
DEFAULT_PORT = 3000

# Like uvicorn, gunicorn and granian (and unlike Ruby iodine, which binds every
# interface), listen on loopback unless an address is given: exposing a server is a
# decision, not a default.
DEFAULT_HOST = "127.0.0.1"

# A URL scheme either names a transport or a service that runs over TCP.
_TRANSPORT_SCHEMES = {"tcp": "tcp", "unix": "unix"}
_SERVICE_SCHEMES = {"raw": "raw", "http": "http", "ws": "http", "sse": "http"}


@dataclass(frozen=True)
class Endpoint:
    """A resolved address: ``kind`` is ``"tcp"`` (host, port) or ``"unix"`` (path)."""

    kind: str
    host: str = ""
    port: int = 0
    path: str = ""
    service: str | None = None

    @property
    def url(self) -> str:
        if self.kind == "unix":
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"


def is_unix_path(address: str) -> bool:
    """Whether ``address`` names a Unix socket file rather than a host."""
    return "/" in address or address.endswith(".sock")


def resolve(
    url: str | None = None,
    address: str | None = None,
    port: int | str | None = None,
    service: str | None = None,
) -> Endpoint:
    """Turn ``listen``/``connect`` arguments into an :class:`Endpoint`.

    Raises:
        ValueError: the URL scheme is unknown or the port is not a number.
    """
    if url is not None:
        return _from_url(url, service)
    if address and is_unix_path(address):
        return Endpoint("unix", path=address, service=service)
    return Endpoint(
        "tcp",
        host=address or DEFAULT_HOST,
        port=_port(DEFAULT_PORT if port is None else port),
        service=service,
    )


def _from_url(url: str, service: str | None) -> Endpoint:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in _TRANSPORT_SCHEMES:
        kind = _TRANSPORT_SCHEMES[scheme]
    elif scheme in _SERVICE_SCHEMES:
        kind = "tcp"
        service = service or _SERVICE_SCHEMES[scheme]
    else:
        known = ", ".join(sorted({*_TRANSPORT_SCHEMES, *_SERVICE_SCHEMES}))
        raise ValueError(f"unknown URL scheme in {url!r}; expected one of {known}")
    if kind == "unix":
        # unix:///run/app.sock gives an absolute path, unix://app.sock a relative one.
        path = unquote(parts.netloc + parts.path)
        if not path:
            raise ValueError(f"no socket path in {url!r}")
        return Endpoint("unix", path=path, service=service)
    return Endpoint(
        "tcp",
        host=parts.hostname or DEFAULT_HOST,
        port=_port(parts.port if parts.port is not None else DEFAULT_PORT),
        service=service,
    )


def _port(value: int | str) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"port must be a number, not {value!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be between 0 and 65535, not {port}")
    return port
