"""iodine-http serving the bench apps: ``python -m bench.http.iodine_server
{asgi,wsgi} PORT``. The app is handed over as is; iodine detects its kind."""

from __future__ import annotations

import sys


def main() -> None:
    interface, port = sys.argv[1], int(sys.argv[2])
    if interface == "asgi":
        from bench.apps.asgi import app
    elif interface == "wsgi":
        from bench.apps.wsgi import app  # type: ignore[assignment]  # either kind
    else:
        raise SystemExit(f"unknown interface {interface!r}; asgi or wsgi")

    import iodine

    iodine.listen(service="http", handler=app, address="127.0.0.1", port=port)
    iodine.run()


if __name__ == "__main__":
    main()
