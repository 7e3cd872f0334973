"""Users on a real `tidings serve` process: personal channels, user_status,
user_connections, disconnecting a user, and broadcast_all.

Personal-channel delivery goes through the centrifuge-python SDK (server-side
subscriptions report to `ClientEventHandler.on_publication`); the rest uses
`cent` or plain HTTP for the API and raw WebSockets where close codes matter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from cent import AsyncClient, BroadcastRequest, Disconnect, DisconnectRequest, PublishRequest

from tests.conftest import OPEN_CHANNEL, ServerProcess
from tests.integration.support.api import api_call, api_raw
from tests.integration.support.sdk import Sdk
from tests.integration.support.ws import (
    STEP,
    assert_open,
    closing,
    connected_ws,
    expect_close,
    recv_messages,
)


@pytest.fixture
async def sdk(server: ServerProcess) -> AsyncIterator[Callable[..., Any]]:
    """`await sdk(user, **claims)` -> a connected SDK client of `server`."""
    clients: list[Sdk] = []

    async def factory(user: str, srv: ServerProcess | None = None, **claims: Any) -> Sdk:
        target = srv or server
        client = Sdk(target.ws_url, target.token(user, **claims), max_reconnect_delay=1.0)
        clients.append(client)
        return await client.connect()

    yield factory
    for client in clients:
        await client.close()


# --- personal channel ------------------------------------------------------------------------


async def test_personal_channel_reaches_every_connection_of_the_user(
    sdk: Any, api: AsyncClient
) -> None:
    first, second, other = await sdk("42"), await sdk("42"), await sdk("43")
    for conn, user in ((first, "42"), (second, "42"), (other, "43")):
        (subscribed,) = await conn.rec.wait("subscribed")
        assert subscribed.channel == f"#{user}"

    await api.publish(PublishRequest(channel="#42", data={"to": "42"}))
    await api.publish(PublishRequest(channel="#43", data={"to": "43"}))

    for conn in (first, second):
        (ctx,) = await conn.rec.wait("publication", lambda c: c.channel == "#42")
        assert ctx.pub.data == {"to": "42"}
    (ctx,) = await other.rec.wait("publication", lambda c: c.channel == "#43")
    assert ctx.pub.data == {"to": "43"}
    # 43 got its own publication (sent after 42's), so 42's would have arrived by now.
    assert other.publications("#42") == []
    assert [c.channel for c in other.rec.of("publication")] == ["#43"]
    assert first.publications("#43") == second.publications("#43") == []


async def test_broadcast_to_personal_channels_reaches_both_users(
    sdk: Any, api: AsyncClient
) -> None:
    conns = {"42": [await sdk("42"), await sdk("42")], "43": [await sdk("43")]}
    await api.broadcast(BroadcastRequest(channels=["#42", "#43"], data={"all": True}))
    for user, user_conns in conns.items():
        for conn in user_conns:
            (ctx,) = await conn.rec.wait("publication", lambda c, u=user: c.channel == f"#{u}")
            assert ctx.pub.data == {"all": True}


async def test_personal_channel_off(server_factory: Any) -> None:
    server = server_factory({"personal_channel": False, "channel": OPEN_CHANNEL})
    ws, result = await connected_ws(server.ws_url, server.token("42"))
    async with closing(ws):
        assert not result.get("subs"), result
        body = await api_call(server, "user_connections", {"user": "42"})
        ((conn,),) = [list(body["connections"].values())]
        assert conn["channels"] == []


async def test_token_channels_are_server_side_subscriptions(
    server: ServerProcess, api: AsyncClient
) -> None:
    token = server.token("42", channels=["news", "#42"])
    ws, result = await connected_ws(server.ws_url, token)
    async with closing(ws):
        assert sorted(result["subs"]) == ["#42", "news"], result
        await api.publish(PublishRequest(channel="news", data={"n": 1}))
        async with asyncio.timeout(STEP):
            while True:
                pubs = [m["push"] for m in await recv_messages(ws) if "push" in m]
                if any(p["channel"] == "news" and p["pub"]["data"] == {"n": 1} for p in pubs):
                    break


# --- user_status -------------------------------------------------------------------------------


async def _status(server: ServerProcess, *users: str) -> dict[str, dict[str, Any]]:
    result = await api_call(server, "user_status", {"users": list(users)})
    return {s["user"]: s for s in result["statuses"]}


async def test_user_status_online_connections_and_grace(server_factory: Any) -> None:
    server = server_factory({"user_events_grace": 1.0, "channel": OPEN_CHANNEL})
    before = time.time()
    status = await _status(server, "42", "never")
    assert status["42"]["online"] is False
    assert status["42"]["connections"] == 0
    assert status["never"] == {"user": "never", "online": False, "connections": 0, "last_seen": 0}

    first, _ = await connected_ws(server.ws_url, server.token("42"))
    second, _ = await connected_ws(server.ws_url, server.token("42"))
    status = await _status(server, "42")
    assert status["42"]["online"] is True
    assert status["42"]["connections"] == 2
    assert status["42"]["last_seen"] >= int(before)

    await first.close()
    await second.close()
    closed_at = time.time()
    await asyncio.sleep(0.3)
    status = await _status(server, "42")
    assert status["42"]["connections"] == 0
    # Within the grace period the user still counts as online.
    assert status["42"]["online"] is True, status

    await asyncio.sleep(1.2)
    status = await _status(server, "42")
    assert status["42"]["online"] is False, status
    assert status["42"]["connections"] == 0
    assert int(before) <= status["42"]["last_seen"] <= closed_at + 1


async def test_user_status_reconnect_within_grace_stays_online(server_factory: Any) -> None:
    server = server_factory({"user_events_grace": 1.0, "channel": OPEN_CHANNEL})
    ws, _ = await connected_ws(server.ws_url, server.token("42"))
    await ws.close()
    await asyncio.sleep(0.3)
    ws, _ = await connected_ws(server.ws_url, server.token("42"))
    async with closing(ws):
        await asyncio.sleep(1.2)  # past the grace of the first connection's close
        status = await _status(server, "42")
        assert status["42"]["online"] is True
        assert status["42"]["connections"] == 1


# --- user_connections ----------------------------------------------------------------------


async def test_user_connections(server: ServerProcess, sdk: Any) -> None:
    before = int(time.time())
    first = await sdk("42")
    ws, result = await connected_ws(server.ws_url, server.token("42", channels=["news"]))
    async with closing(ws):
        await sdk("43")
        body = await api_call(server, "user_connections", {"user": "42"})
        conns = body["connections"]
        assert sorted(conns) == sorted([first.id, result["client"]])
        for client_id, conn in conns.items():
            assert conn["client"] == client_id
            assert conn["user"] == "42"
            assert conn["transport"] == "websocket"
            host, _, port = conn["remote_addr"].rpartition(":")
            assert host == "127.0.0.1" and int(port) > 0, conn
            assert before <= conn["connected_at"] <= time.time()
            assert "#42" in conn["channels"]
        assert conns[first.id]["channels"] == ["#42"]
        assert conns[first.id]["name"] == "python"
        assert sorted(conns[result["client"]]["channels"]) == ["#42", "news"]
        assert conns[result["client"]]["name"] == "raw-test"

        nobody = await api_call(server, "user_connections", {"user": "nobody"})
        assert nobody["connections"] == {}


# --- disconnect a user --------------------------------------------------------------------


async def test_disconnect_user_with_custom_code(server: ServerProcess, api: AsyncClient) -> None:
    sockets = [(await connected_ws(server.ws_url, server.token(u)))[0] for u in ("42", "42", "43")]
    async with closing(*sockets):
        first, second, other = sockets
        await api.disconnect(
            DisconnectRequest(user="42", disconnect=Disconnect(code=4501, reason="go away"))
        )
        assert await expect_close(first) == 4501
        assert await expect_close(second) == 4501
        assert first.close_reason == "go away"
        await assert_open(other, 2)
        status = await _status(server, "42", "43")
        assert status["42"]["connections"] == 0
        assert status["43"]["connections"] == 1


async def test_disconnect_one_connection_of_a_user(server: ServerProcess) -> None:
    first, result = await connected_ws(server.ws_url, server.token("42"))
    second, _ = await connected_ws(server.ws_url, server.token("42"))
    async with closing(first, second):
        await api_call(server, "disconnect", {"user": "42", "client": result["client"]})
        assert await expect_close(first) == 3503  # force disconnect by default
        await assert_open(second, 2)


# --- broadcast_all -------------------------------------------------------------------------


async def test_broadcast_all_is_paced(server: ServerProcess) -> None:
    users = [f"u{i}" for i in range(10)]
    sockets = [(await connected_ws(server.ws_url, server.token(u)))[0] for u in users]
    async with closing(*sockets):
        started = time.monotonic()
        result = await api_call(server, "broadcast_all", {"data": {"hi": "all"}, "rate": 20})
        assert result["users"] == 10
        assert result["rate"] == 20
        assert result["seconds"] == pytest.approx(0.5)
        assert result["task"]

        async def arrival(ws: Any, user: str) -> float:
            async with asyncio.timeout(STEP):
                while True:
                    for message in await recv_messages(ws):
                        push = message.get("push", {})
                        if push.get("channel") == f"#{user}":
                            assert push["pub"]["data"] == {"hi": "all"}
                            return time.monotonic() - started

        times = await asyncio.gather(
            *(arrival(ws, u) for ws, u in zip(sockets, users, strict=True))
        )
        spread = max(times) - min(times)
        assert max(times) >= 0.3, times  # paced at 20 users/s, not one burst
        assert spread >= 0.3, times
        assert max(times) < 3.0, times


async def test_broadcast_all_needs_personal_channels(server_factory: Any) -> None:
    server = server_factory({"personal_channel": False})
    body = await api_raw(server, "broadcast_all", {"data": {"x": 1}})
    assert body.get("error", {}).get("code") == 108, body
