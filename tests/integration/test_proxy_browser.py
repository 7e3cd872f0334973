"""The npm SDK in headless Chromium connects through the connect proxy, by its cookie alone.

The browser holds a session cookie for the node's origin; the WebSocket
upgrade carries it, the node passes it on (`http_headers = ["Cookie"]`), and
the back end tells who the user is. No token anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import ServerProcess
from tests.integration.support.browser import assert_sdk_vendored
from tests.upstream.backend import Answer, Backend

pytestmark = [pytest.mark.timeout(120)]

from playwright.async_api import Browser  # noqa: E402

CONNECT = """
async ([url, channel]) => {
  const client = new Centrifuge(url);
  const connected = await new Promise((resolve, reject) => {
    client.on("connected", resolve);
    client.on("disconnected", (ctx) => reject(new Error(`disconnected ${ctx.code}`)));
    client.connect();
  });
  const sub = client.newSubscription(channel);
  const subscribed = new Promise((resolve) => sub.on("subscribed", resolve));
  sub.subscribe();
  await subscribed;
  const rpc = await client.rpc("whoami", {});
  client.disconnect();
  return { data: connected.data, rpc: rpc.data };
}
"""


@pytest.fixture(autouse=True)
def sdk_vendored() -> None:
    assert_sdk_vendored("centrifuge.js")


def by_cookie(body: dict[str, Any], headers: Any) -> Answer:
    cookie = headers.get("Cookie", "")
    if "sid=" not in cookie:
        return Answer(json.dumps({"disconnect": {"code": 4501, "reason": "who?"}}).encode())
    user = cookie.split("sid=", 1)[1].split(";")[0]
    return Answer(json.dumps({"result": {"user": user, "data": {"hi": user}}}).encode())


async def test_npm_sdk_connects_by_cookie(
    server_factory: Callable[..., ServerProcess], backend: Backend, browser: Browser
) -> None:
    proxy = {"timeout": "2s", "http_headers": ["Cookie"]}
    server = server_factory(
        {
            "demo": True,  # serves the SDK at /static/centrifuge.js
            "proxy": {
                "connect": {"endpoint": backend.url("connect"), **proxy},
                "subscribe": {"endpoint": backend.url("subscribe"), **proxy},
                "rpc": {"endpoint": backend.url("rpc"), **proxy},
            },
            "namespaces": {"room": {"subscribe_proxy_enabled": True}},
        }
    )
    backend.answer_with_headers("connect", by_cookie)
    backend.answer("subscribe", {"result": {}})
    backend.answer(
        "rpc",
        lambda body: Answer(json.dumps({"result": {"data": {"user": body["user"]}}}).encode()),
    )
    origin = f"http://127.0.0.1:{server.port}"
    context = await browser.new_context()
    await context.add_cookies([{"name": "sid", "value": "77", "url": origin}])
    page = await context.new_page()
    try:
        await page.goto(f"{origin}/static/centrifuge.js")
        await page.add_script_tag(url="/static/centrifuge.js")
        result = await page.evaluate(CONNECT, [server.ws_url, "room:lobby"])
    finally:
        await context.close()
    assert result == {"data": {"hi": "77"}, "rpc": {"user": "77"}}
    [connect] = backend.of("connect")
    assert connect.headers["Cookie"] == "sid=77"
    assert connect.body["transport"] == "websocket"
    assert backend.of("subscribe")[0].body["user"] == "77"


EMULATED = """
async ([url, token]) => {
  const client = new Centrifuge(url, { headers: { Authorization: `Bearer ${token}` } });
  const connected = await new Promise((resolve, reject) => {
    client.on("connected", resolve);
    client.on("disconnected", (ctx) => reject(new Error(`disconnected ${ctx.code}`)));
    client.connect();
  });
  client.disconnect();
  return connected.data;
}
"""


async def test_npm_sdk_headers_emulation(
    server_factory: Callable[..., ServerProcess], backend: Backend, browser: Browser
) -> None:
    """A browser cannot set WebSocket headers: the SDK's `headers` travel in connect."""
    server = server_factory(
        {
            "demo": True,
            "proxy": {
                "connect": {
                    "endpoint": backend.url("connect"),
                    "emulated_headers": ["Authorization"],
                }
            },
        }
    )

    def by_bearer(body: dict[str, Any], headers: Any) -> Answer:
        user = headers.get("Authorization", "").removeprefix("Bearer ")
        return Answer(json.dumps({"result": {"user": user, "data": {"hi": user}}}).encode())

    backend.answer_with_headers("connect", by_bearer)
    origin = f"http://127.0.0.1:{server.port}"
    context = await browser.new_context()
    page = await context.new_page()
    try:
        await page.goto(f"{origin}/static/centrifuge.js")
        await page.add_script_tag(url="/static/centrifuge.js")
        data = await page.evaluate(EMULATED, [server.ws_url, "ann"])
    finally:
        await context.close()
    assert data == {"hi": "ann"}
    assert backend.of("connect")[0].headers["Authorization"] == "Bearer ann"
