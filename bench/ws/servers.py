"""The WebSocket servers that need a launcher, one per process:
``python -m bench.ws.servers KIND PORT``.

uvicorn and granian run ``bench.apps.ws:app`` from their own command lines
(see ``bench/ws/suite.py``); iodine runs the same app, or the native one, through
``iodine.listen(service="http")``; picows has no ASGI layer, so its echo is
written here with its listener API. ``uvloop-floor`` is no server anyone
would use: the least a WebSocket echo can do in Python on uvloop's transports
(see :func:`serve_uvloop_floor`).
"""

from __future__ import annotations

import sys
from typing import Any

KINDS = ("iodine-native", "iodine-asgi", "picows", "uvloop-floor")


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


def serve_uvloop_floor(port: int) -> None:
    """A bare ``asyncio.Protocol`` echo on uvloop: a handshake, then each
    masked frame in a read unmasked and sent back in one write.

    No limits, no validation, no message assembly, no callbacks: only what
    every Python WebSocket server on uvloop pays per message (the read, the
    Python call, one unmask, one write). A server's ratio to it is how much of
    that floor its own code adds; picows' ratio to it is what picows' own
    transports save over uvloop's.
    """
    import asyncio
    import base64
    import hashlib

    import uvloop

    guid = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    class FloorEcho(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.buffer = b""
            self.open = False

        def data_received(self, data: bytes) -> None:
            buffer = self.buffer + data if self.buffer else data
            if not self.open:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    self.buffer = buffer
                    return
                key = b""
                for line in buffer[:end].split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"sec-websocket-key":
                        key = value.strip()
                accept = base64.b64encode(hashlib.sha1(key + guid).digest())
                self.transport.write(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % accept
                )
                self.open = True
                buffer = buffer[end + 4 :]
            out = []
            while len(buffer) >= 6:
                opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
                start = 2 + {126: 2, 127: 8}.get(length, 0)
                if length >= 126:
                    length = int.from_bytes(buffer[2:start], "big")
                end = start + 4 + length
                if len(buffer) < end:
                    break
                mask = buffer[start : start + 4]
                key = (mask * (length // 4 + 1))[:length]
                payload = (
                    int.from_bytes(buffer[start + 4 : end], "little")
                    ^ int.from_bytes(key, "little")
                ).to_bytes(length, "little")
                buffer = buffer[end:]
                if opcode == 0x8:
                    self.transport.write(b"\x88\x00")
                    self.transport.close()
                    return
                header = bytes((0x80 | opcode,))
                if length < 126:
                    header += bytes((length,))
                elif length < 0x10000:
                    header += b"\x7e" + length.to_bytes(2, "big")
                else:
                    header += b"\x7f" + length.to_bytes(8, "big")
                out.append(header + payload)
            self.buffer = buffer
            if out:
                self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(FloorEcho, "127.0.0.1", port, backlog=2048)
        async with server:
            await server.serve_forever()

    uvloop.run(main())


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind not in KINDS:
        raise SystemExit(f"unknown server {kind!r}; one of {', '.join(KINDS)}")
    if kind == "picows":
        serve_picows(port)
    elif kind == "uvloop-floor":
        serve_uvloop_floor(port)
    else:
        serve_iodine(port, native=kind == "iodine-native")


if __name__ == "__main__":
    main()
