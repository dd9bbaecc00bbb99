"""The HTTP floor: ``python -m bench.http.floor_server PORT``.

Not a peer. A bare ``asyncio.Protocol`` on uvloop that feeds httptools and
answers every complete request with the bench app's hello-world response, the
same bytes iodine sends (a ``Date`` header cached once a second included).
It has no application interface, no limits and no checks beyond the
parser's: one read, every request in it parsed, one write for their answers.
What it costs per request is the least any Python server on uvloop and
httptools can pay, so ``iodine-asgi / uvloop-floor`` is the share of that
floor iodine's own code leaves, and ``uvloop-floor / <peer>`` the most any
such server could reach against that peer.
"""

from __future__ import annotations

import asyncio
import sys
import time
from email.utils import formatdate
from typing import cast

import httptools
import uvloop

from bench.apps.asgi import BODY

_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: "
    + str(len(BODY)).encode()
    + b"\r\ndate: "
)


class _Clock:
    """The ``Date`` value, formatted at most once a second."""

    second = 0
    response = b""

    @classmethod
    def hello(cls) -> bytes:
        now = int(time.time())
        if now != cls.second:
            cls.second = now
            date = formatdate(now, usegmt=True).encode()
            cls.response = _HEAD + date + b"\r\n\r\n" + BODY
        return cls.response


class FloorProtocol(asyncio.Protocol):
    __slots__ = ("answers", "parser", "transport")

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.answers: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not registered as asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)

    def on_message_complete(self) -> None:
        self.answers.append(_Clock.hello())

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            transport.close()
            return
        answers = self.answers
        if answers:
            transport.write(answers[0] if len(answers) == 1 else b"".join(answers))
            answers.clear()
            if not self.parser.should_keep_alive():
                transport.close()


def main() -> None:
    port = int(sys.argv[1])

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            FloorProtocol, "127.0.0.1", port, backlog=2048
        )
        async with server:
            await server.serve_forever()

    uvloop.run(serve())


if __name__ == "__main__":
    main()
