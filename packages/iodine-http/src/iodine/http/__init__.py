"""iodine's HTTP/1.1 server for ASGI 3 and WSGI applications.

Installed by ``iodine-http``; core finds it through the ``iodine.services``
entry point, so applications only call::

    import iodine

    iodine.listen(service="http", handler=app, port=8000)
    iodine.run()

See ``docs/http.md`` for every option and the design.
"""

from __future__ import annotations

from iodine.http.asgi import ClientDisconnected
from iodine.http.config import HttpConfig
from iodine.http.proxy import TrustedProxies
from iodine.http.service import http_service

__all__ = ["ClientDisconnected", "HttpConfig", "TrustedProxies", "http_service"]
