"""Services: what answers on a listening socket (``"raw"``, ``"http"``, ...).

Core knows only ``"raw"``. Other packages announce theirs through the
``iodine.services`` entry point group (iodine-http declares ``http``), so core
never imports them: a service is looked up by name when ``listen`` needs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from iodine.core.connection import Connection
from iodine.core.handlers import check_handler

if TYPE_CHECKING:
    from iodine.core.reactor import Reactor

ServiceFactory = Callable[
    ["Reactor", Any, dict[str, Any]], Callable[[], asyncio.BaseProtocol]
]
"""``factory(reactor, handler, options)`` returns the protocol factory of a listener.

``options`` holds the extra keyword arguments given to ``listen``; a service
removes those it understands and must reject the rest.
"""

# Where to find the package of a service that is not installed.
_PACKAGES = {"http": "iodine-http"}

_services: dict[str, ServiceFactory] = {}


def register_service(name: str, factory: ServiceFactory) -> None:
    """Make ``listen(service=name)`` use ``factory``."""
    _services[name] = factory


def find_service(name: str) -> ServiceFactory:
    """The factory of service ``name``, loading its entry point if needed.

    Raises:
        ValueError: no installed package provides the service.
    """
    factory = _services.get(name)
    if factory is not None:
        return factory
    for entry in entry_points(group="iodine.services", name=name):
        factory = entry.load()
        _services[name] = factory
        return factory  # type: ignore[no-any-return]  # entry points are untyped
    package = _PACKAGES.get(name)
    if package:
        raise ValueError(
            f"the {name!r} service needs the {package} package: pip install {package}"
        )
    raise ValueError(f"unknown service {name!r}; installed: {', '.join(_services)}")


ClientFactory = Callable[["Reactor", str, Any, dict[str, Any]], Any]
"""``factory(reactor, url, handler, options)`` opens a client connection for a URL
scheme core does not speak (``ws``, ``wss``) and returns its connection object;
``reactor.open_client`` does the connecting."""

_clients: dict[str, ClientFactory] = {}

# Where to find the package of a client scheme that is not installed.
_CLIENT_PACKAGES = {"ws": "iodine-http", "wss": "iodine-http"}


def register_client(scheme: str, factory: ClientFactory) -> None:
    """Make ``connect(url="SCHEME://...")`` use ``factory``."""
    _clients[scheme] = factory


def find_client(scheme: str) -> ClientFactory:
    """The client factory for URL ``scheme`` (entry point group ``iodine.clients``).

    Raises:
        ValueError: no installed package speaks that scheme.
    """
    factory = _clients.get(scheme)
    if factory is not None:
        return factory
    for entry in entry_points(group="iodine.clients", name=scheme):
        factory = entry.load()
        _clients[scheme] = factory
        return factory  # type: ignore[no-any-return]  # entry points are untyped
    package = _CLIENT_PACKAGES.get(scheme)
    if package:
        raise ValueError(
            f"{scheme}:// connections need the {package} package: pip install {package}"
        )
    raise ValueError(f"iodine.connect cannot open {scheme}:// URLs")


def raw_service(
    reactor: Reactor, handler: object, options: dict[str, Any]
) -> Callable[[], asyncio.BaseProtocol]:
    """Plain TCP or Unix connections driven by the handler's callbacks.

    Options:
        timeout: idle seconds before ``on_timeout`` for each new connection.
    """
    timeout = float(options.pop("timeout", 0))
    if options:
        raise TypeError(
            f"unexpected option(s) for a raw listener: {', '.join(options)}"
        )
    if handler is None:
        raise TypeError("listen() needs a handler for the raw service")
    check_handler(handler)  # rejects a bad handler now, not per connection
    return lambda: Connection(reactor, handler, timeout=timeout)


register_service("raw", raw_service)
