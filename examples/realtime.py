"""A WebSocket chat and an EventSource clock on one page:
``iodine serve examples/realtime.py`` then open http://localhost:3000/.

The ASGI app serves the page at ``/`` and hands the two other paths to native
handlers with the ``iodine.upgrade`` extension, so no ASGI message is built
per chat line or clock tick:

- ``/ws``: a WebSocket chat room. Whatever a page sends goes to every page
  open on this process (iodine-pubsub will carry it across workers).
- ``/sse``: a clock ticking every second. Each tick carries an ``id``, so when
  the stream drops (restart the server to see it) the browser reconnects with
  ``Last-Event-ID``, and the clock resumes counting where it stopped.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import iodine

log = logging.getLogger("iodine.examples")

# Every open chat socket in this process.
members: set[Any] = set()


class Chat:
    """One handler object for all chat sockets: the state is ``members``."""

    def on_open(self, conn: Any) -> None:
        members.add(conn)
        conn.write(f"Welcome! {len(members)} here now.")

    def on_message(self, conn: Any, data: str | bytes) -> None:
        # Text comes as str and goes out as a text frame, to everyone.
        text = data if isinstance(data, str) else data.decode(errors="replace")
        for member in list(members):
            member.write(text)

    def on_close(self, conn: Any, reason: iodine.CloseReason) -> None:
        members.discard(conn)


CHAT = Chat()


class Clock:
    """One instance per stream (the class is the factory): a tick a second."""

    def __init__(self) -> None:
        self.count = 0
        self.timer: Any = None

    def on_open(self, conn: Any) -> None:
        # A reconnecting EventSource sends the id of the last event it saw
        # as the Last-Event-ID header.
        # iodine hands it over as conn.last_event_id (the raw header is in
        # conn.scope["headers"], like every other).
        resumed = conn.last_event_id
        if resumed is not None and resumed.isdigit():
            self.count = int(resumed)
            hello = f"resumed after tick {resumed} (Last-Event-ID)"
        else:
            hello = "clock started"
        # retry: reconnect 1 s after a drop (browsers wait 3 s by default).
        conn.write_sse(hello, event="resume", retry=1000)
        self.timer = iodine.run_every(1000, lambda: self.tick(conn))

    def tick(self, conn: Any) -> None:
        self.count += 1
        now = time.strftime("%H:%M:%S")
        conn.write_sse(now, id=str(self.count), event="tick")

    def on_shutdown(self, conn: Any) -> None:
        conn.write_sse("server shutting down", event="resume")

    def on_close(self, conn: Any, reason: iodine.CloseReason) -> None:
        self.timer.cancel()


PAGE = b"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>iodine: WebSocket and EventSource</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; max-width: 40em; margin: 2em auto; }
  ul { border: 1px solid #ccc; height: 10em; overflow-y: auto; padding: .5em 1.5em; }
  #clock { font: bold 2em monospace; }
</style>
</head>
<body>
<h1>Realtime with iodine</h1>

<h2>Chat (WebSocket <span id="ws-state">connecting</span>)</h2>
<ul id="chat-log"></ul>
<form id="chat">
  <input id="message" autocomplete="off" placeholder="Say something">
  <button id="send">Send</button>
</form>

<h2>Clock (EventSource <span id="sse-state">connecting</span>)</h2>
<p><span id="clock">--:--:--</span> tick <span id="tick-id">-</span></p>
<ul id="sse-log"></ul>

<script>
function append(list, text) {
  const item = document.createElement("li");
  item.textContent = text;
  document.getElementById(list).append(item);
}

// The chat: one WebSocket; what the server sends is shown as it comes.
const socket = new WebSocket(`ws://${location.host}/ws`);
const wsState = document.getElementById("ws-state");
socket.onopen = () => { wsState.textContent = "open"; };
socket.onclose = () => { wsState.textContent = "closed"; };
socket.onmessage = (event) => append("chat-log", event.data);
document.getElementById("chat").onsubmit = (event) => {
  event.preventDefault();
  const input = document.getElementById("message");
  if (input.value) socket.send(input.value);
  input.value = "";
};

// The clock: the browser reconnects by itself, sending Last-Event-ID.
const clock = new EventSource("/sse");
const sseState = document.getElementById("sse-state");
clock.onopen = () => { sseState.textContent = "open"; };
clock.onerror = () => { sseState.textContent = "reconnecting"; };
clock.addEventListener("tick", (event) => {
  document.getElementById("clock").textContent = event.data;
  document.getElementById("tick-id").textContent = event.lastEventId;
});
clock.addEventListener("resume", (event) => append("sse-log", event.data));
</script>
</body>
</html>
"""

PAGE_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", str(len(PAGE)).encode()),
    ],
}
NOT_FOUND = b"Not found: try / for the page.\n"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    kind = scope["type"]
    if kind == "lifespan":
        return  # nothing to set up: iodine serves without lifespan
    path = scope["path"]
    can_upgrade = "iodine.upgrade" in scope.get("extensions", {})

    # /ws: hand the WebSocket to the chat handler.
    if kind == "websocket":
        if path == "/ws" and can_upgrade:
            await send({"type": "iodine.upgrade", "handler": CHAT})
        else:
            await send({"type": "websocket.close", "code": 1008})
        return

    # /sse: an EventSource (Accept: text/event-stream) gets a clock.
    if path == "/sse" and can_upgrade:
        await send({"type": "iodine.upgrade", "handler": Clock})
        return

    # / : the page; anything else: 404.
    if path == "/":
        await send(PAGE_START)
        await send({"type": "http.response.body", "body": PAGE})
        return
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": NOT_FOUND})
