"""A raw TCP echo server: ``python examples/echo.py`` then ``telnet localhost 3000``.

Type ``bye`` to be disconnected. Set ``PORT`` to use another port.
"""

from __future__ import annotations

import logging
import os

import iodine

log = logging.getLogger("iodine.examples")


class Echo:
    def on_open(self, conn: iodine.Connection) -> None:
        conn.timeout = 10
        conn.write(b"Echo server: type something, or 'bye' to leave.\r\n")

    def on_message(self, conn: iodine.Connection, data: bytes) -> None:
        conn.write(b"Echo: " + data)
        if data.strip() == b"bye":
            conn.write(b"Goodbye.\r\n")
            conn.close()

    def on_timeout(self, conn: iodine.Connection) -> None:
        conn.write(b"Server: are you there?\r\n")

    def on_shutdown(self, conn: iodine.Connection) -> None:
        conn.write(b"Server is shutting down, goodbye.\r\n")

    def on_close(self, conn: iodine.Connection, reason: iodine.CloseReason) -> None:
        log.info("Connection from %s closed (%s).", conn.peer, reason)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "3000"))
    listener = iodine.listen(port=port, handler=Echo)
    # The delayed log line of Ruby iodine's echo example, on a cancellable timer.
    iodine.run_after(
        1000, lambda: log.warning("Echo server listening on port %d.", listener.port)
    )
    iodine.run()
