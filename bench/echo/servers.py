"""The echo servers under test, one per process: ``python -m bench.echo.servers
KIND PORT``.

All four do the same work per message: take what arrived, write it back.
"""

from __future__ import annotations

import asyncio
import sys

KINDS = ("iodine-inline", "iodine-threads", "uvloop-protocol", "uvloop-buffered")


class IodineEcho:
    """iodine's native handler: the whole server is this one callback."""

    def on_message(self, conn: object, data: bytes) -> None:
        conn.write(data)  # type: ignore[attr-defined]  # conn is iodine's Connection


def serve_iodine(port: int, callbacks: str) -> None:
    import iodine

    iodine.settings.callbacks = callbacks  # type: ignore[assignment]  # checked by run
    iodine.listen(port=port, address="127.0.0.1", handler=IodineEcho)
    iodine.run()


class ProtocolEcho(asyncio.Protocol):
    """The reference: the smallest echo uvloop can run."""

    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a TCP transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


# One buffer for every connection, as iodine-core does: uvloop calls
# buffer_updated right after filling it, so nobody else can be reading it.
_SHARED = memoryview(bytearray(256 * 1024))


class BufferedEcho(asyncio.BufferedProtocol):
    """uvloop's BufferedProtocol read path, alone, the way iodine-core uses it.

    The bytes are copied out of the shared buffer before writing, as any
    handler that may keep its data needs; the saving, if any, is uvloop not
    allocating a fresh bytes object inside its read callback.
    """

    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a TCP transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return _SHARED

    def buffer_updated(self, nbytes: int) -> None:
        self.transport.write(_SHARED[:nbytes].tobytes())


def serve_uvloop(port: int, buffered: bool) -> None:
    import uvloop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        protocol = BufferedEcho if buffered else ProtocolEcho
        # The same backlog as iodine-core, so neither accepts faster.
        server = await loop.create_server(protocol, "127.0.0.1", port, backlog=2048)
        async with server:
            await server.serve_forever()

    uvloop.run(main())


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind not in KINDS:
        raise SystemExit(f"unknown echo server {kind!r}; one of {', '.join(KINDS)}")
    if kind.startswith("iodine"):
        serve_iodine(port, kind.removeprefix("iodine-"))
    else:
        serve_uvloop(port, buffered=kind == "uvloop-buffered")


if __name__ == "__main__":
    main()
