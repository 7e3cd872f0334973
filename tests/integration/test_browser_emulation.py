"""The npm SDK in headless Chromium over the emulation transports, WebSocket unavailable.

The SDK is given the transports `[websocket, http_stream, sse]`, as an
application would configure it, in a page whose browser offers all of them
(it then takes WebSocket), or no WebSocket, or neither WebSocket nor
readable fetch streams: it must use the first one left, connect,
subscribe, publish (through the emulation endpoint when emulated), receive
API publications, and recover what it missed after a server-side
disconnect. JSON and Protobuf builds (SSE is JSON only, as in the SDK).
Chromium is Debian's; `make test` installs it and the SDK
(scripts/setup-test-deps.sh).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from playwright.async_api import Browser

from tests.conftest import OPEN_CHANNEL, ServerProcess
from tests.integration.support.api import api_body as api
from tests.integration.support.emulation_page import (
    CLIENT_JS,
    EMULATION_CHROMIUM_ARGS,
    check_browser_dependencies,
    log_of,
    open_page,
    wait_for,
)

pytestmark = [pytest.mark.timeout(120)]


@pytest.fixture(autouse=True, scope="module")
def browser_dependencies() -> None:
    check_browser_dependencies()


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory({"namespaces": {"news": OPEN_CHANNEL}})


@pytest.fixture
def chromium_args() -> list[str]:
    """The `browser` fixture (tests/integration/conftest.py) launches Chromium with these."""
    return EMULATION_CHROMIUM_ARGS


@pytest.mark.parametrize(
    ("transport", "protobuf"),
    [
        ("http_stream", False),
        ("http_stream", True),
        ("sse", False),
        ("websocket", False),
        ("websocket", True),
    ],
)
async def test_sdk_over_emulation_subscribes_publishes_recovers(
    browser: Browser, server: ServerProcess, transport: str, protobuf: bool
) -> None:
    page = await open_page(browser, server, protobuf)
    args = {
        "token": server.token("ana"),
        "wsUrl": server.ws_url,
        "protobuf": protobuf,
        "noWebSocket": transport != "websocket",
        "noStreams": transport == "sse",
    }
    await page.evaluate(CLIENT_JS, args)
    await wait_for(page, "window.emuLog.subscribed.length === 1")
    log = await log_of(page)
    assert log["connected"] == [transport], log

    # Client → server through /emulation, server → client through the stream.
    await page.evaluate("() => window.emuPublish({n: 1})")
    await api(server, "publish", {"channel": "news:room", "data": {"n": 2}})
    await wait_for(page, "window.emuLog.pubs.length === 2")

    # A server-side disconnect with a reconnect code; what is published meanwhile
    # comes back with the recovery of the new connection.
    await api(server, "disconnect", {"user": "ana", "disconnect": {"code": 3001, "reason": "x"}})
    for n in (3, 4, 5):
        await api(server, "publish", {"channel": "news:room", "data": {"n": n}})
    await wait_for(page, "window.emuLog.subscribed.length === 2")
    await wait_for(page, "window.emuLog.pubs.length === 5")
    log = await log_of(page)
    assert [p["n"] for p in log["pubs"]] == [1, 2, 3, 4, 5]
    assert log["subscribed"][1] == {"wasRecovering": True, "recovered": True}, log
    assert log["connected"] == [transport, transport], log
    # Commands still flow after the reconnect (a new session on the emulation endpoint).
    await page.evaluate("() => window.emuPublish({n: 6})")
    await wait_for(page, "window.emuLog.pubs.length === 6")
    await page.evaluate("() => window.emuClient.disconnect()")
    await page.close()


async def test_emulation_sessions_are_separate(browser: Browser, server: ServerProcess) -> None:
    """Two pages over HTTP-stream: each one's commands reach its own session only."""
    pages = [await open_page(browser, server, False) for _ in range(2)]
    for i, page in enumerate(pages):
        args = {
            "token": server.token(f"user{i}"),
            "wsUrl": server.ws_url,
            "protobuf": False,
            "noWebSocket": True,
            "noStreams": False,
        }
        await page.evaluate(CLIENT_JS, args)
    for page in pages:
        await wait_for(page, "window.emuLog.subscribed.length === 1")
    await pages[0].evaluate("() => window.emuPublish({n: 'from0'})")
    for page in pages:
        await wait_for(page, "window.emuLog.pubs.length === 1")
    await pages[0].evaluate("() => window.emuClient.disconnect()")
    await asyncio.sleep(0.2)
    await pages[1].evaluate("() => window.emuPublish({n: 'from1'})")
    await wait_for(pages[1], "window.emuLog.pubs.length === 2")
    assert (await log_of(pages[1]))["pubs"] == [{"n": "from0"}, {"n": "from1"}]
