"""A telnet chat room: ``python examples/chat.py`` then ``telnet localhost 3000``.

Each newcomer is asked for a nickname by a login handler; the answer switches the
connection to a chat handler (the old handler's ``on_close`` runs, then the new
one's ``on_open``). Idle members are pinged. Messages go to everyone in this
process; iodine-pubsub will carry them across workers and machines.
"""

from __future__ import annotations

import logging
import os

import iodine

log = logging.getLogger("iodine.examples")

# Everyone who has chosen a nickname, by connection.
members: dict[iodine.Connection, str] = {}

# Seconds of silence before a member is pinged, and the time a newcomer has
# to choose a nickname (the environment may shorten them, as the tests do).
IDLE = float(os.environ.get("CHAT_IDLE", "40"))
LOGIN_WAIT = float(os.environ.get("CHAT_LOGIN_WAIT", "20"))


def broadcast(text: str, sender: iodine.Connection | None = None) -> None:
    for conn in list(members):
        if conn is not sender:
            conn.write(text)


class Chat:
    def __init__(self, name: str) -> None:
        self.name = name

    def on_open(self, conn: iodine.Connection) -> None:
        members[conn] = self.name
        conn.timeout = IDLE
        conn.write(f"Welcome, {self.name}! {len(members)} here now.\r\n")
        broadcast(f"* {self.name} joined the chat.\r\n", sender=conn)

    def on_message(self, conn: iodine.Connection, data: bytes) -> None:
        text = data.decode(errors="replace").strip()
        if text == "bye":
            conn.write("Goodbye.\r\n")
            conn.close()
        elif text:
            broadcast(f"{self.name}: {text}\r\n", sender=conn)

    def on_timeout(self, conn: iodine.Connection) -> None:
        conn.write("Server: ping (say something to stay)\r\n")

    def on_shutdown(self, conn: iodine.Connection) -> None:
        conn.write("Server is shutting down, goodbye.\r\n")

    def on_close(self, conn: iodine.Connection, reason: iodine.CloseReason) -> None:
        members.pop(conn, None)
        broadcast(f"* {self.name} left the chat.\r\n")


class Login:
    def on_open(self, conn: iodine.Connection) -> None:
        conn.timeout = LOGIN_WAIT
        conn.write("Enter your nickname to join the chat: ")

    def on_message(self, conn: iodine.Connection, data: bytes) -> None:
        name = data.decode(errors="replace").strip()
        if not name or name in members.values():
            conn.write("Taken or empty; try another nickname: ")
            return
        conn.handler = Chat(name)

    def on_timeout(self, conn: iodine.Connection) -> None:
        conn.write("\r\nToo slow to log in, goodbye.\r\n")
        conn.close()


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "3000"))
    listener = iodine.listen(port=port, handler=Login)
    iodine.run_after(
        1000, lambda: log.warning("Chat server listening on port %d.", listener.port)
    )
    iodine.run()
