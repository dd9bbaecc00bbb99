"""ASGI lifespan: the application's start-up and shutdown, around serving.

Start-up runs in the reactor's ``pre_start`` hook, before the listeners
accept, so the first request finds the database pool (or whatever start-up
made) ready; shutdown runs in ``on_finish``, once connections are closed. The
lifespan coroutine itself is one task for the whole run.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from iodine.core.reactor import Reactor

logger = logging.getLogger("iodine.http")


class Lifespan:
    """Runs one application's lifespan protocol.

    Attributes:
        state: The ``scope["state"]`` namespace the application fills at
            start-up; each request gets a shallow copy. None until start-up
            has completed (or when the application does not do lifespan).
    """

    def __init__(self, reactor: Reactor, app: Any, mode: str) -> None:
        self.reactor = reactor
        self.app = app
        self.mode = mode
        self.state: dict[str, Any] | None = None
        self.failed = False
        self._namespace: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None
        self._events: asyncio.Queue[str] | None = None
        self._started: asyncio.Future[bool] | None = None
        self._stopped: asyncio.Future[None] | None = None

    async def startup(self) -> None:
        """Send ``lifespan.startup`` and wait for the answer.

        A failed start-up (``lifespan.startup.failed``, or an exception with
        ``lifespan="on"``) stops the server.
        """
        loop = asyncio.get_running_loop()
        self._events = asyncio.Queue()
        self._started = loop.create_future()
        self._stopped = loop.create_future()
        self._events.put_nowait("lifespan.startup")
        self._task = loop.create_task(self._main())
        if await self._started:
            self.state = self._namespace
            logger.debug("ASGI lifespan start-up complete.")
        elif self.failed:
            logger.error("Application start-up failed; stopping.")
            self.reactor.stop()

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait for it (bounded)."""
        task, events = self._task, self._events
        if task is None or events is None or task.done():
            return
        events.put_nowait("lifespan.shutdown")
        assert self._stopped is not None
        timeout = self.reactor.settings.shutdown_timeout
        try:
            await asyncio.wait_for(asyncio.shield(self._stopped), timeout)
        except TimeoutError:
            logger.warning(
                "The application's lifespan shutdown took over %.1f s; cancelling it.",
                timeout,
            )
            task.cancel()

    async def _main(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self._namespace,
        }
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            self._ended_with(exc)
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
                raise
        else:
            self._resolve(self._started, False)
        finally:
            self._resolve(self._stopped, None)

    def _ended_with(self, exc: BaseException) -> None:
        started = self._started
        if started is not None and not started.done():
            # Raised before answering start-up: most often an application
            # that has no lifespan support and rejects the scope type.
            if self.mode == "on":
                self.failed = True
                logger.error("Exception in the ASGI lifespan start-up:", exc_info=exc)
            else:
                logger.info(
                    "The application does not support ASGI lifespan (%s: %s); "
                    "serving without it.",
                    type(exc).__name__,
                    exc,
                )
            started.set_result(False)
        else:
            logger.error("Exception in the ASGI lifespan:", exc_info=exc)

    async def _receive(self) -> dict[str, Any]:
        assert self._events is not None
        return {"type": await self._events.get()}

    async def _send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self._resolve(self._started, True)
        elif kind == "lifespan.startup.failed":
            self.failed = True
            logger.error("Application start-up failed: %s", message.get("message", ""))
            self._resolve(self._started, False)
        elif kind == "lifespan.shutdown.complete":
            self._resolve(self._stopped, None)
        elif kind == "lifespan.shutdown.failed":
            logger.error("Application shutdown failed: %s", message.get("message", ""))
            self._resolve(self._stopped, None)
        else:
            raise RuntimeError(f"unexpected ASGI lifespan message {kind!r}")

    @staticmethod
    def _resolve(future: asyncio.Future[Any] | None, value: Any) -> None:
        if future is not None and not future.done():
            future.set_result(value)
