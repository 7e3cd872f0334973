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
from typing import Any

import pytest

from tests.conftest import OPEN_CHANNEL, ServerProcess
from tests.integration.support.api import api_body as api
from tests.integration.support.browser import VENDOR, assert_sdk_vendored

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    # The test page is served by Playwright, not from 127.0.0.1: without this, Chromium
    # treats it as public and blocks its WebSocket to a loopback address.
    "--disable-features=LocalNetworkAccessChecks",
]
TIMEOUT_MS = 15_000

pytestmark = [pytest.mark.timeout(120)]

from playwright.async_api import Browser, Page  # noqa: E402

#: Runs in the page: connects with every transport configured, records what happens.
CLIENT_JS = """
async (args) => {
  if (args.noWebSocket) { window.WebSocket = undefined; }  // a browser (or proxy) without it
  if (args.noStreams) { window.ReadableStream = undefined; }
  const protobuf = args.protobuf;
  const enc = (v) => protobuf ? new TextEncoder().encode(JSON.stringify(v)) : v;
  const dec = (d) => protobuf ? JSON.parse(new TextDecoder().decode(d)) : d;
  const log = window.emuLog = {connected: [], pubs: [], subscribed: [], errors: []};
  const c = new Centrifuge([
    {transport: 'websocket', endpoint: args.wsUrl},
    {transport: 'http_stream', endpoint: '/connection/http_stream'},
    {transport: 'sse', endpoint: '/connection/sse'},
  ], {token: args.token, emulationEndpoint: '/emulation', minReconnectDelay: 1500,
      maxReconnectDelay: 2000});
  window.emuClient = c;
  c.on('connected', (ctx) => log.connected.push(ctx.transport));
  c.on('error', (ctx) => log.errors.push(JSON.stringify(ctx.error)));
  const sub = c.newSubscription('news:room');
  window.emuSub = sub;
  sub.on('subscribed', (ctx) => log.subscribed.push(
    {wasRecovering: ctx.wasRecovering, recovered: ctx.recovered}));
  sub.on('publication', (ctx) => log.pubs.push(dec(ctx.data)));
  window.emuPublish = (v) => sub.publish(enc(v));
  sub.subscribe();
  c.connect();
}
"""


@pytest.fixture(autouse=True, scope="module")
def browser_dependencies() -> None:
    assert_sdk_vendored("centrifuge.js", "centrifuge.protobuf.js")


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory({"namespaces": {"news": OPEN_CHANNEL}})


@pytest.fixture
def chromium_args() -> list[str]:
    return CHROMIUM_ARGS


async def open_page(browser: Browser, server: ServerProcess, protobuf: bool) -> Page:
    """A page of the server's origin (served by the test) with the SDK loaded."""
    page = await browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    url = f"http://127.0.0.1:{server.port}/emulation-test.html"

    async def fulfil(route: Any) -> None:
        await route.fulfill(body="<!doctype html><title>t</title>", content_type="text/html")

    await page.route(url, fulfil)
    await page.goto(url)
    build = "centrifuge.protobuf.js" if protobuf else "centrifuge.js"
    await page.add_script_tag(path=str(VENDOR / build))
    return page


async def wait_for(page: Page, condition: str) -> None:
    await page.wait_for_function(f"() => {condition}", timeout=TIMEOUT_MS)


async def log_of(page: Page) -> dict[str, Any]:
    value: dict[str, Any] = await page.evaluate("() => window.emuLog")
    return value


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
