"""The npm SDK in headless Chromium over every transport: the page, its script, its log.

Shared by the browser tests of the emulation transports (one node, and a
cluster whose emulation requests reach another node than the stream).
"""

from __future__ import annotations

from typing import Any

from playwright.async_api import Browser, Page

from tests.conftest import ServerProcess
from tests.integration.support.browser import CHROMIUM_ARGS, VENDOR, assert_sdk_vendored

#: The `chromium_args` of the modules that use this page (see their fixture).
EMULATION_CHROMIUM_ARGS = [
    *CHROMIUM_ARGS,
    # The test page is served by Playwright, not from 127.0.0.1: without this, Chromium
    # treats it as public and blocks its WebSocket to a loopback address.
    "--disable-features=LocalNetworkAccessChecks",
]
TIMEOUT_MS = 15_000

#: Runs in the page: connects with every transport configured, records what happens.
#: `args.emulationEndpoint` (default `/emulation`, this page's server) is where the
#: SDK posts the commands of an emulated connection.
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
  ], {token: args.token, emulationEndpoint: args.emulationEndpoint || '/emulation',
      minReconnectDelay: 1500, maxReconnectDelay: 2000});
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


def check_browser_dependencies() -> None:
    """Chromium is installed and both SDK builds the page loads are vendored."""
    assert_sdk_vendored("centrifuge.js", "centrifuge.protobuf.js")


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
