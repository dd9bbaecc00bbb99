"""The WebSocket servers that need a launcher, one per process:
``python -m bench.ws.servers KIND PORT``.

uvicorn and granian run ``bench.apps.ws:app`` from their own command lines
(see ``bench/ws/suite.py``); iodine runs the same app, or the native one, through
``iodine.listen(service="http")``; picows has no ASGI layer, so its echo is
written here with its listener API.
"""

from __future__ import annotations

import sys
from typing import Any

KINDS = ("iodine-native", "iodine-asgi", "picows")


def serve_iodine(port: int, native: bool) -> None:
    import iodine
    from bench.apps.ws import app, native_app

    handler = native_app if native else app
    iodine.listen(service="http", handler=handler, address="127.0.0.1", port=port)
    iodine.run()


def serve_picows(port: int) -> None:
    import picows
    import uvloop

    class PicowsEcho(picows.WSListener):
        """Each data frame goes back as it came; a close is answered."""

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            kind = frame.msg_type
            if kind == picows.WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()
            elif kind in (picows.WSMsgType.TEXT, picows.WSMsgType.BINARY):
                transport.send(kind, frame.get_payload_as_memoryview())

    def listener(request: Any) -> PicowsEcho:
        return PicowsEcho()

    async def main() -> None:
        # The same backlog as iodine-core's listeners; picows' defaults
        # otherwise (its aiofastnet transports, a 16 KiB read buffer per
        # connection): what a picows user gets.
        server = await picows.ws_create_server(
            listener, "127.0.0.1", port, backlog=2048
        )
        async with server:
            await server.serve_forever()

    uvloop.run(main())


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind not in KINDS:
        raise SystemExit(f"unknown server {kind!r}; one of {', '.join(KINDS)}")
    if kind == "picows":
        serve_picows(port)
    else:
        serve_iodine(port, native=kind == "iodine-native")


if __name__ == "__main__":
    main()
