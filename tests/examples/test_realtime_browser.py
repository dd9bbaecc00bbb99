"""examples/realtime.py in a real browser: headless Chromium, driven by
Playwright, against ``iodine serve`` in a subprocess.

Chromium comes from the system (Debian's ``chromium``), never from
``playwright install``. Without it the test is skipped on a developer's
machine and fails in CI (``CI`` set), where a skip would hide a missing
install step.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.examples.conftest import StartServer, free_port, needs_http

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "realtime.py"

# Flags for a root user in a container with no GPU and no network to phone.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

# Waits in the page, in milliseconds: ticks come every second, and a dropped
# EventSource retries after the 1 s the example asks for.
WAIT_MS = 15_000

pytestmark = [needs_http, pytest.mark.timeout(120)]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must provide it", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        _unavailable("no chromium on PATH (apt-get install chromium)")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def _serve_example(serve: StartServer, port: int) -> Any:
    return serve(str(EXAMPLE), "-p", str(port), "-b", "127.0.0.1", port=port)


def _tick(page: Any) -> int:
    text = page.text_content("#tick-id")
    return int(text) if text and text.isdigit() else 0


def _wait_tick_above(page: Any, tick: int) -> None:
    page.wait_for_function(
        "n => Number(document.getElementById('tick-id').textContent) > n",
        arg=tick,
        timeout=WAIT_MS,
    )


def test_page_chats_over_websocket_and_resumes_the_clock_after_restart(
    browser: Any, serve: StartServer
) -> None:
    port = free_port()
    server = _serve_example(serve, port)
    url = f"http://127.0.0.1:{port}/"
    page = browser.new_page()
    other = browser.new_page()
    page.goto(url)
    other.goto(url)

    # The WebSocket opens and echoes what is typed.
    page.wait_for_selector("#ws-state:text('open')", timeout=WAIT_MS)
    other.wait_for_selector("#ws-state:text('open')", timeout=WAIT_MS)
    page.fill("#message", "hello from the browser")
    page.click("#send")
    page.wait_for_selector(
        "#chat-log li:text('hello from the browser')", timeout=WAIT_MS
    )
    # ... and so does every other page open on the server.
    other.wait_for_selector(
        "#chat-log li:text('hello from the browser')", timeout=WAIT_MS
    )

    # The EventSource receives ticks, each with an id.
    _wait_tick_above(page, 1)
    assert "clock started" in page.text_content("#sse-log")

    # A restart drops the stream; the browser reconnects with Last-Event-ID
    # and the new server's handler resumes the count from it.
    assert server.terminate() == 0
    seen = _tick(page)
    _serve_example(serve, port)
    page.wait_for_selector("#sse-log li:text('resumed after tick')", timeout=WAIT_MS)
    resumed = page.text_content("#sse-log li:has-text('resumed after tick')")
    assert resumed is not None
    last_event_id = int(resumed.split("resumed after tick ")[1].split()[0])
    assert last_event_id >= seen
    _wait_tick_above(page, last_event_id)
    assert page.text_content("#sse-state") == "open"
