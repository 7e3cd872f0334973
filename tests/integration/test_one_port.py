"""One-port mode: `api_on_client_port = true` serves the API on the client port too (cent)."""

from __future__ import annotations

import json
from collections.abc import Callable

import aiohttp
import pytest
from cent import AsyncClient, CentApiResponseError, CentUnauthorizedError, PublishRequest

from tests.conftest import OPEN_CHANNEL, ServerProcess
from tests.integration.support.sdk import TIMEOUT
from tests.integration.support.ws import connected_ws, recv_messages, subscribe


def client_port_api(server: ServerProcess) -> str:
    return f"http://127.0.0.1:{server.port}/api"


async def test_api_on_the_client_port(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory({"api_on_client_port": True, "channel": OPEN_CHANNEL})
    ws, _ = await connected_ws(server.ws_url, server.token("ivy"))
    await subscribe(ws, "news")
    async with AsyncClient(client_port_api(server), server.api_key, timeout=TIMEOUT) as api:
        # Several calls on one keep-alive connection, all through the client port.
        for n in range(3):
            result = await api.publish(PublishRequest(channel="news", data={"n": n}))
            assert result.offset == n + 1
        with pytest.raises(CentApiResponseError) as err:
            await api.publish(PublishRequest(channel="zz:x", data=1))
        assert err.value.code == 102
    seen: list[int] = []
    while len(seen) < 3:
        for message in await recv_messages(ws):
            if "pub" in message.get("push", {}):
                seen.append(message["push"]["pub"]["data"]["n"])
    assert seen == [0, 1, 2]
    await ws.close()
    async with AsyncClient(client_port_api(server), "wrong key", timeout=TIMEOUT) as bad:
        with pytest.raises(CentUnauthorizedError):
            await bad.publish(PublishRequest(channel="news", data=1))
    # The legacy envelope form is served too.
    async with aiohttp.ClientSession() as http:
        body = {"method": "info", "params": {}}
        headers = {"X-API-Key": server.api_key}
        async with http.post(client_port_api(server), json=body, headers=headers) as resp:
            assert resp.status == 200
            assert "result" in json.loads(await resp.read())


async def test_off_by_default(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as http:
        headers = {"X-API-Key": server.api_key}
        body = {"channel": "news", "data": 1}
        async with http.post(f"{client_port_api(server)}/publish", json=body, headers=headers) as r:
            assert r.status == 404
