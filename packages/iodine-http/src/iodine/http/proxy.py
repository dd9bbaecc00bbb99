"""Proxy headers: who the client really is, when a trusted proxy says so.

A reverse proxy (nginx, a load balancer) connects to iodine itself, so the
socket's peer is the proxy. It reports the original client and scheme in
``X-Forwarded-For`` / ``X-Forwarded-Proto`` or in ``Forwarded`` (RFC 7239).
Anyone can send those headers, so they are only believed when the peer is a
trusted proxy; otherwise a client could pose as any address it likes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """The peers whose forwarding headers are believed.

    Built from a comma-separated string or a list of addresses and networks
    (``"127.0.0.1, 10.0.0.0/8"``); ``"*"`` trusts every peer, which is only
    right when nothing but the proxy can reach the server.
    """

    __slots__ = ("_addresses", "_networks", "trust_all")

    def __init__(self, spec: str | Iterable[str]) -> None:
        items = spec.split(",") if isinstance(spec, str) else list(spec)
        self.trust_all = False
        self._addresses: set[str] = set()
        self._networks: list[Network] = []
        for raw in items:
            item = str(raw).strip()
            if not item:
                continue
            if item == "*":
                self.trust_all = True
            elif "/" in item:
                try:
                    self._networks.append(ipaddress.ip_network(item, strict=False))
                except ValueError:
                    raise ValueError(
                        f"forwarded_allow_ips: {item!r} is not a network"
                    ) from None
            else:
                # Plain entries may also be Unix socket paths or host names
                # that match the peer string as it is.
                self._addresses.add(item)

    def __contains__(self, host: object) -> bool:
        if self.trust_all:
            return True
        if not isinstance(host, str):
            return False
        if host in self._addresses:
            return True
        if not self._networks:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def __repr__(self) -> str:
        items = ["*"] if self.trust_all else sorted(self._addresses)
        items += [str(network) for network in self._networks]
        return f"TrustedProxies({', '.join(items)!r})"


def forwarded_client(
    headers: list[tuple[bytes, bytes]],
    trusted: TrustedProxies,
    client: tuple[str, int] | None,
    scheme: str,
) -> tuple[tuple[str, int] | None, str]:
    """The ``(client, scheme)`` the proxy headers give, else those passed in.

    Call only when the socket's peer is trusted. ``Forwarded`` wins over the
    ``X-Forwarded-*`` pair when both are present, as RFC 7239 intends.
    """
    forwarded: list[bytes] = []
    xff: list[bytes] = []
    proto: bytes | None = None
    for name, value in headers:
        if name == b"forwarded":
            forwarded.append(value)
        elif name == b"x-forwarded-for":
            xff.append(value)
        elif name == b"x-forwarded-proto":
            proto = value

    if forwarded:
        hops, protos = _parse_forwarded(b",".join(forwarded))
        if protos:
            scheme = _scheme(protos[-1], scheme)
    else:
        hops = [hop.strip() for hop in b",".join(xff).decode("latin-1").split(",")]
        if proto is not None:
            scheme = _scheme(proto.decode("latin-1").split(",")[-1], scheme)

    # Each proxy appends the peer it saw, so read from the right and stop at
    # the first hop that is not a proxy we trust: that one is the client.
    hops = [hop for hop in hops if hop]
    if hops:
        host = hops[0]
        for hop in reversed(hops):
            if hop not in trusted:
                host = hop
                break
        client = (_strip_port(host), 0)
    return client, scheme


def _scheme(value: str, default: str) -> str:
    value = value.strip().lower()
    return value if value in ("http", "https", "ws", "wss") else default


def _parse_forwarded(value: bytes) -> tuple[list[str], list[str]]:
    """``for`` and ``proto`` parameters of a Forwarded header, hop by hop."""
    hops: list[str] = []
    protos: list[str] = []
    for element in value.decode("latin-1").split(","):
        for pair in element.split(";"):
            key, _, item = pair.partition("=")
            key = key.strip().lower()
            item = item.strip().strip('"')
            if key == "for":
                hops.append(item)
            elif key == "proto":
                protos.append(item)
    return hops, protos


def _strip_port(host: str) -> str:
    """``"[::1]:80"`` -> ``"::1"``, ``"1.2.3.4:80"`` -> ``"1.2.3.4"``."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        return host.partition(":")[0]
    return host
