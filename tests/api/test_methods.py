"""The server API methods against an in-process Node (no HTTP)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.core.conftest import Conn, make_settings, settle
from tidings.api.methods import ServerApi
from tidings.core.node import Node
from tidings.errors import ReplyError

NAMESPACES: dict[str, Any] = {
    "bare": {},
    "h": {"history_size": 3, "history_ttl": "1m", "allow_subscribe_for_client": True},
}


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    created = Node(make_settings(namespaces=NAMESPACES))
    yield created
    await created.stop()


@pytest.fixture
def api(node: Node) -> ServerApi:
    return ServerApi(node)


async def run(api: ServerApi, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Decode the JSON body as the HTTP layer does, call the method, and JSON round-trip."""
    request = api.decode(method, msgspec.json.encode(body or {}))
    result = await api.call(method, request)
    decoded: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(result))
    return decoded


async def fails(api: ServerApi, method: str, body: dict[str, Any] | None = None) -> int:
    with pytest.raises(ReplyError) as info:
        await run(api, method, body)
    return info.value.code


async def user(node: Node, name: str, *channels: str) -> Conn:
    conn = Conn(node)
    await conn.connect(name)
    for n, channel in enumerate(channels, start=2):
        await conn.subscribe(channel, cid=n)
    conn.transport.take()
    return conn


def pushes(conn: Conn, kind: str) -> list[dict[str, Any]]:
    return [r["push"] for r in conn.transport.take() if kind in r.get("push", {})]


# --- decoding ----------------------------------------------------------------------------


def test_method_names(api: ServerApi) -> None:
    expected = {
        "publish",
        "broadcast",
        "subscribe",
        "unsubscribe",
        "disconnect",
        "refresh",
        "presence",
        "presence_stats",
        "history",
        "history_remove",
        "channels",
        "info",
        "batch",
    }
    assert expected <= set(api.method_names)


def test_decode_errors(api: ServerApi) -> None:
    for method, body, code in [
        ("nope", b"{}", 104),
        ("publish", b"{not json", 107),
        ("publish", b'{"data":1}', 107),
        ("publish", b'{"channel":"c","data":1,"chanel":"x"}', 107),
        ("publish", b'{"channel":5,"data":1}', 107),
    ]:
        with pytest.raises(ReplyError) as info:
            api.decode(method, body)
        assert info.value.code == code, (method, body)


def test_unknown_field_is_named(api: ServerApi) -> None:
    with pytest.raises(ReplyError, match="chanel"):
        api.decode("publish", b'{"channel":"c","data":1,"chanel":"x"}')


def test_empty_body_is_an_empty_object(api: ServerApi) -> None:
    assert api.decode("info", b"") is not None


# --- publish / broadcast ------------------------------------------------------------


async def test_publish_delivers_and_returns_position(api: ServerApi, node: Node) -> None:
    conn = await user(node, "u1", "news")
    result = await run(api, "publish", {"channel": "news", "data": {"x": 1}, "tags": {"t": "1"}})
    assert result["offset"] == 1 and result["epoch"]
    await settle()
    (push,) = pushes(conn, "pub")
    assert push["pub"]["data"] == {"x": 1}
    assert push["pub"]["tags"] == {"t": "1"}


async def test_publish_without_history_returns_empty_result(api: ServerApi, node: Node) -> None:
    assert await run(api, "publish", {"channel": "bare:x", "data": 1}) == {}
    assert await run(api, "publish", {"channel": "news", "data": 1, "skip_history": True}) == {}
    assert (await node.history.position("news")).offset == 0


async def test_publish_errors(api: ServerApi) -> None:
    assert await fails(api, "publish", {"channel": "zz:x", "data": 1}) == 102
    assert await fails(api, "publish", {"channel": "", "data": 1}) == 107
    assert await fails(api, "publish", {"channel": "c", "data": 1, "b64data": "AQ=="}) == 107
    assert await fails(api, "publish", {"channel": "c"}) == 107  # no data at all


async def test_broadcast(api: ServerApi, node: Node) -> None:
    a = await user(node, "u1", "a")
    b = await user(node, "u2", "b")
    result = await run(api, "broadcast", {"channels": ["a", "b", "zz:c"], "data": "hi"})
    responses = result["responses"]
    assert responses[0]["result"]["offset"] == 1
    assert responses[1]["result"]["offset"] == 1
    assert responses[2]["error"]["code"] == 102
    await settle()
    assert [p["pub"]["data"] for p in pushes(a, "pub")] == ["hi"]
    assert [p["pub"]["data"] for p in pushes(b, "pub")] == ["hi"]


async def test_broadcast_needs_channels(api: ServerApi) -> None:
    assert await fails(api, "broadcast", {"channels": [], "data": 1}) == 107


# --- users and connections -------------------------------------------------------------


async def test_subscribe_user(api: ServerApi, node: Node) -> None:
    first, second = await user(node, "u1"), await user(node, "u1")
    other = await user(node, "u2")
    assert await run(api, "subscribe", {"user": "u1", "channel": "h:room", "data": {"w": 1}}) == {}
    await settle()
    for conn in (first, second):
        (push,) = pushes(conn, "subscribe")
        assert push["channel"] == "h:room"
        assert push["subscribe"]["data"] == {"w": 1}
        assert push["subscribe"]["recoverable"] is True
        assert "h:room" in conn.client.subscriptions
    assert pushes(other, "subscribe") == []
    assert node.hub.num_subscribers("h:room") == 2


async def test_subscribe_one_client(api: ServerApi, node: Node) -> None:
    first, second = await user(node, "u1"), await user(node, "u1")
    await run(api, "subscribe", {"user": "u1", "channel": "news", "client": second.client.id})
    assert "news" not in first.client.subscriptions
    assert "news" in second.client.subscriptions


async def test_subscribe_errors(api: ServerApi) -> None:
    assert await fails(api, "subscribe", {"user": "", "channel": "news"}) == 107
    assert await fails(api, "subscribe", {"user": "u1", "channel": "zz:x"}) == 102


async def test_unsubscribe_user(api: ServerApi, node: Node) -> None:
    conn = await user(node, "u1", "news")
    assert await run(api, "unsubscribe", {"user": "u1", "channel": "news"}) == {}
    await settle()
    (push,) = pushes(conn, "unsubscribe")
    assert push == {
        "channel": "news",
        "unsubscribe": {"code": 2000, "reason": "server unsubscribe"},
    }
    assert node.hub.num_subscribers("news") == 0
    assert await fails(api, "unsubscribe", {"user": "", "channel": "news"}) == 107


async def test_disconnect_user(api: ServerApi, node: Node) -> None:
    a1, a2, b = await user(node, "a"), await user(node, "a"), await user(node, "b")
    assert await run(api, "disconnect", {"user": "a", "whitelist": [a2.client.id]}) == {}
    assert (a1.closed_with, a2.closed_with, b.closed_with) == (3503, None, None)
    await run(api, "disconnect", {"user": "a", "disconnect": {"code": 4001, "reason": "bye"}})
    assert (a2.closed_with, a2.transport.close_reason) == (4001, "bye")


async def test_disconnect_one_client_and_bad_code(api: ServerApi, node: Node) -> None:
    a1, a2 = await user(node, "a"), await user(node, "a")
    await run(api, "disconnect", {"user": "a", "client": a2.client.id})
    assert (a1.closed_with, a2.closed_with) == (None, 3503)
    assert await fails(api, "disconnect", {"user": "a", "disconnect": {"code": 1000}}) == 107
    assert await fails(api, "disconnect", {"user": ""}) == 107
    assert a1.closed_with is None


async def test_refresh_user(api: ServerApi, node: Node) -> None:
    conn = await user(node, "u1")
    expire_at = int(time.time()) + 120
    assert await run(api, "refresh", {"user": "u1", "expire_at": expire_at}) == {}
    await settle()
    (push,) = pushes(conn, "refresh")
    assert push["refresh"]["expires"] is True and 110 <= push["refresh"]["ttl"] <= 120
    assert conn.client.expire_at == expire_at
    await run(api, "refresh", {"user": "u1", "expired": True})
    assert conn.closed_with == 3005
    assert await fails(api, "refresh", {"user": ""}) == 107


# --- channels ---------------------------------------------------------------------------------


async def test_presence_and_stats(api: ServerApi, node: Node) -> None:
    a = await user(node, "a", "news")
    await user(node, "a", "news")
    await user(node, "b", "news")
    result = await run(api, "presence", {"channel": "news"})
    assert len(result["presence"]) == 3
    assert result["presence"][a.client.id] == {"user": "a", "client": a.client.id}
    assert await run(api, "presence_stats", {"channel": "news"}) == {
        "num_clients": 3,
        "num_users": 2,
    }
    assert await fails(api, "presence", {"channel": "bare:x"}) == 108
    assert await fails(api, "presence_stats", {"channel": "bare:x"}) == 108


async def test_history_and_remove(api: ServerApi) -> None:
    for n in range(5):
        await run(api, "publish", {"channel": "h:c", "data": n})
    result = await run(api, "history", {"channel": "h:c", "limit": -1})
    assert [p["data"] for p in result["publications"]] == [2, 3, 4]
    assert result["offset"] == 5
    epoch = result["epoch"]
    result = await run(
        api, "history", {"channel": "h:c", "limit": 1, "reverse": True, "since": {"offset": 3}}
    )
    assert [p["offset"] for p in result["publications"]] == [5]
    assert (await run(api, "history", {"channel": "h:c"}))["publications"] == []
    assert (
        await fails(api, "history", {"channel": "h:c", "since": {"offset": 1, "epoch": epoch}})
        == 112
    )
    assert await fails(api, "history", {"channel": "bare:x"}) == 108
    assert await run(api, "history_remove", {"channel": "h:c"}) == {}
    result = await run(api, "history", {"channel": "h:c", "limit": -1})
    assert (result["publications"], result["offset"], result["epoch"]) == ([], 5, epoch)
    assert await fails(api, "history_remove", {"channel": "zz:x"}) == 102


async def test_channels(api: ServerApi, node: Node) -> None:
    await user(node, "a", "h:1", "news")
    await user(node, "b", "news")
    result = await run(api, "channels", {})
    assert result == {"channels": {"h:1": {"num_clients": 1}, "news": {"num_clients": 2}}}
    assert set((await run(api, "channels", {"pattern": "h:*"}))["channels"]) == {"h:1"}


async def test_info(api: ServerApi, node: Node) -> None:
    await user(node, "a", "news")
    (info,) = (await run(api, "info"))["nodes"]
    assert info["uid"] == node.uid
    assert info["name"] == node.name
    assert (info["num_clients"], info["num_users"], info["num_channels"]) == (1, 1, 1)
    assert info["metrics"]["items"]["counter.connects"] == 1
    assert info["process"]["rss"] > 0


async def test_user_status_and_connections(api: ServerApi, node: Node) -> None:
    conn = await user(node, "a", "news")
    statuses = (await run(api, "user_status", {"users": ["a", "ghost"]}))["statuses"]
    assert [(s["user"], s["online"], s["connections"]) for s in statuses] == [
        ("a", True, 1),
        ("ghost", False, 0),
    ]
    connections = (await run(api, "user_connections", {"user": "a"}))["connections"]
    assert connections[conn.client.id]["channels"] == ["news"]
    assert connections[conn.client.id]["transport"] == "memory"
    assert await fails(api, "user_connections", {"user": ""}) == 107


async def test_broadcast_all_needs_personal_channels(api: ServerApi) -> None:
    assert await fails(api, "broadcast_all", {"data": 1}) == 108


async def test_broadcast_all(tmp_path: Path) -> None:
    node = Node(make_settings(personal_channel=True, data_dir=str(tmp_path)))
    api = ServerApi(node)
    try:
        a, b = await user(node, "a"), await user(node, "b")
        result = await run(api, "broadcast_all", {"data": "all", "rate": 1000})
        assert result["users"] == 2
        for _ in range(200):
            if not node.broadcasts.progress:
                break
            await asyncio.sleep(0.005)
        await settle()
        for conn in (a, b):
            assert [p["pub"]["data"] for p in pushes(conn, "pub")] == ["all"]
    finally:
        await node.stop()


# --- batch --------------------------------------------------------------------------------


@pytest.mark.parametrize("parallel", [False, True])
async def test_batch(api: ServerApi, node: Node, parallel: bool) -> None:
    result = await run(
        api,
        "batch",
        {
            "commands": [
                {"publish": {"channel": "h:b", "data": 1}},
                {"publish": {"channel": "zz:b", "data": 1}},
                {"history": {"channel": "h:b", "limit": -1}},
                {"nope": {}},
                {"publish": {"channel": "h:b", "bogus": 1}},
            ],
            "parallel": parallel,
        },
    )
    replies = result["replies"]
    assert len(replies) == 5
    assert replies[0]["publish"]["offset"] == 1
    assert replies[1]["error"]["code"] == 102
    assert "history" in replies[2]
    if not parallel:
        assert [p["data"] for p in replies[2]["history"]["publications"]] == [1]
    assert replies[3]["error"]["code"] == 104
    assert replies[4]["error"]["code"] == 107


async def test_batch_refuses_nesting_and_ambiguous_commands(api: ServerApi) -> None:
    assert await fails(api, "batch", {"commands": [{"batch": {"commands": []}}]}) == 107
    two = {"info": {}, "channels": {}}
    assert await fails(api, "batch", {"commands": [two]}) == 107
    assert await run(api, "batch", {"commands": []}) == {"replies": []}
