"""Emulation requests that reach another node than the stream, relayed over Redis.

Two `tidings serve` nodes on one real redis-server. The npm SDK in headless
Chromium opens its stream (HTTP-stream, JSON and Protobuf, or SSE) on node
A and posts its commands to node B's emulation endpoint, as behind a load
balancer that spreads requests: B relays each request to A through the
control channel. Subscribe, publish, API publications through B, a
disconnect from B and the recovery that follows must all work. Raw requests
show what B answers for a session or node that does not exist.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from playwright.async_api import Browser

from tests.conftest import OPEN_CHANNEL, ServerProcess
from tests.integration.cluster_support import cluster_settings, node_names, start_nodes, wait_for
from tests.integration.support.api import api_body as api
from tests.integration.support.api import api_call
from tests.integration.support.emulation_page import (
    CLIENT_JS,
    EMULATION_CHROMIUM_ARGS,
    check_browser_dependencies,
    log_of,
    open_page,
)
from tests.integration.support.emulation_page import wait_for as wait_in_page
from tidings.testing.redis import RedisServer

pytestmark = [pytest.mark.timeout(120)]
TIMEOUT = 10.0


@pytest.fixture(autouse=True, scope="module")
def browser_dependencies() -> None:
    check_browser_dependencies()


@pytest.fixture
def chromium_args() -> list[str]:
    """The `browser` fixture (tests/integration/conftest.py) launches Chromium with these."""
    return EMULATION_CHROMIUM_ARGS


@pytest.fixture
async def nodes(
    server_factory: Callable[..., ServerProcess], redis_server: RedisServer
) -> tuple[ServerProcess, ServerProcess]:
    settings = cluster_settings(
        [redis_server.url],
        namespaces={"news": OPEN_CHANNEL},
        durable_allow_volatile=True,
        # The page comes from A and posts to B: another origin for B.
        allowed_origins=["*"],
    )
    a, b = start_nodes(server_factory, settings, count=2)
    for server in (a, b):  # each must have heard the other's heartbeat
        await wait_for(lambda s=server: _sees_two(s), "both nodes in info")
    return a, b


async def _sees_two(server: ServerProcess) -> bool:
    return len(await node_names(server)) == 2


@pytest.mark.parametrize(
    ("transport", "protobuf"), [("http_stream", False), ("http_stream", True), ("sse", False)]
)
async def test_sdk_posting_to_the_other_node(
    browser: Browser,
    nodes: tuple[ServerProcess, ServerProcess],
    transport: str,
    protobuf: bool,
) -> None:
    a, b = nodes
    page = await open_page(browser, a, protobuf)
    args = {
        "token": a.token("ana"),
        "wsUrl": a.ws_url,
        "protobuf": protobuf,
        "noWebSocket": True,
        "noStreams": transport == "sse",
        "emulationEndpoint": f"http://127.0.0.1:{b.port}/emulation",
    }
    await page.evaluate(CLIENT_JS, args)
    # The subscribe command went through B to the stream on A.
    await wait_in_page(page, "window.emuLog.subscribed.length === 1")
    assert (await log_of(page))["connected"] == [transport]

    await page.evaluate("() => window.emuPublish({n: 1})")
    await api(b, "publish", {"channel": "news:room", "data": {"n": 2}})
    await wait_in_page(page, "window.emuLog.pubs.length === 2")

    # A disconnect asked of B reaches the connection on A; the SDK reconnects (to A)
    # and recovers, through B, what was published meanwhile.
    await api(b, "disconnect", {"user": "ana", "disconnect": {"code": 3001, "reason": "x"}})
    for n in (3, 4, 5):
        await api(b, "publish", {"channel": "news:room", "data": {"n": n}})
    await wait_in_page(page, "window.emuLog.subscribed.length === 2")
    await wait_in_page(page, "window.emuLog.pubs.length === 5")
    await page.evaluate("() => window.emuPublish({n: 6})")
    await wait_in_page(page, "window.emuLog.pubs.length === 6")
    log = await log_of(page)
    assert [p["n"] for p in log["pubs"]] == [1, 2, 3, 4, 5, 6]
    assert log["subscribed"][1] == {"wasRecovering": True, "recovered": True}, log
    assert log["connected"] == [transport, transport], log
    await page.evaluate("() => window.emuClient.disconnect()")
    await page.close()


async def _post(server: ServerProcess, body: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"POST /emulation HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    status_line = await asyncio.wait_for(reader.readline(), TIMEOUT)
    writer.close()
    return int(status_line.split()[1])


async def _node_uid(server: ServerProcess, name: str) -> str:
    info = await api_call(server, "info", {})
    (uid,) = [n["uid"] for n in info["nodes"] if n["name"] == name]
    return str(uid)


async def test_unknown_session_or_node_through_the_other_node(
    nodes: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = nodes
    ping = '{"id":1,"ping":{}}'
    a_uid = await _node_uid(a, "node-0")  # start_nodes names them node-0, node-1
    unknown_session = json.dumps({"session": "nope", "node": a_uid, "data": ping})
    assert await _post(b, unknown_session.encode()) == 404  # A answered: no such session
    unknown_node = json.dumps({"session": "nope", "node": "no-such-node", "data": ping})
    assert await _post(b, unknown_node.encode()) == 404
