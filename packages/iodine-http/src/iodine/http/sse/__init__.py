"""Server-sent events: the event-stream format and native SSE connections."""

from __future__ import annotations

from iodine.http.sse.connection import DEFAULT_PING, SSEConnection, upgrade
from iodine.http.sse.events import (
    format_data,
    format_event,
    is_event_stream_request,
    last_event_id,
    response_head,
)

__all__ = [
    "DEFAULT_PING",
    "SSEConnection",
    "format_data",
    "format_event",
    "is_event_stream_request",
    "last_event_id",
    "response_head",
    "upgrade",
]
