"""The access log: one line per request on the ``iodine.access`` logger.

The format is the Common Log Format with the duration in seconds appended::

    127.0.0.1 - - [03/Dec/2026:19:57:00 +0000] "GET / HTTP/1.1" 200 13 0.000211

The protocol only calls in here when ``access_log`` is on, so a server without
it pays one attribute test per request. The time string is cached per second,
like the Date header.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from iodine.http.exchange import Exchange

logger = logging.getLogger("iodine.access")


class _ClfTime:
    """``03/Dec/2026:19:57:00 +0000`` for the current second."""

    __slots__ = ("second", "text")

    def __init__(self) -> None:
        self.second = -1
        self.text = ""

    def get(self) -> str:
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.text = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now))
        return self.text


_clf_time = _ClfTime().get


def log_request(exchange: Exchange) -> None:
    """Log one finished (or failed) request."""
    client = exchange.client
    logger.info(
        '%s - - [%s] "%s %s HTTP/%s" %d %d %.6f',
        client[0] if client else "-",
        _clf_time(),
        exchange.method,
        exchange.target.decode("latin-1"),
        exchange.http_version,
        exchange.status,
        exchange.sent,
        time.perf_counter() - exchange.started,
    )
