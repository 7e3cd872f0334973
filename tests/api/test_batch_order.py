"""A sequential `batch`: publications issued together, applied and answered in order.

On the memory engine and on real redis-server engines (one server, two shards).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from tests.core.conftest import OPEN, Conn, make_settings
from tidings.api.methods import ServerApi
from tidings.core.node import Node
from tidings.engine.redis import RedisEngine
from tidings.testing.redis import RedisServer

NAMESPACES: dict[str, Any] = {
    "h": {**OPEN, "history_size": 1000, "history_ttl": "1m"},
}
CHANNELS = ["h:a", "h:b", "h:c", "h:d"]


@pytest.fixture(params=["memory", "redis", "redis-2shards"])
async def node(request: pytest.FixtureRequest) -> AsyncIterator[Node]:
    async for created in _node(request):
        yield created


@pytest.fixture(params=["redis", "redis-2shards"])
async def redis_node(request: pytest.FixtureRequest) -> AsyncIterator[Node]:
    async for created in _node(request):
        yield created


async def _node(request: pytest.FixtureRequest) -> AsyncIterator[Node]:
    extra: dict[str, Any] = {}
    if request.param != "memory":
        servers: list[RedisServer] = [request.getfixturevalue("redis_server")]
        if request.param == "redis-2shards":
            servers.append(request.getfixturevalue("redis_server_b"))
        extra = {
            "engine": "redis",
            "redis_address": [s.url for s in servers],
            "redis_prefix": "b" + uuid.uuid4().hex[:8],
            "redis_connect_timeout": 5.0,
            "redis_command_timeout": 5.0,
        }
    created = Node(make_settings(namespaces=NAMESPACES, **extra))
    await created.start()
    yield created
    await created.stop()


async def batch(node: Node, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    api = ServerApi(node)
    request = api.decode("batch", msgspec.json.encode({"commands": commands}))
    result = await api.call("batch", request)
    replies: list[dict[str, Any]] = msgspec.json.decode(msgspec.json.encode(result))["replies"]
    return replies


async def history(node: Node, channel: str) -> list[Any]:
    (reply,) = await batch(node, [{"history": {"channel": channel, "limit": -1}}])
    return [p["data"] for p in reply["history"]["publications"]]


async def test_offsets_follow_the_batch_order(node: Node) -> None:
    commands = [{"publish": {"channel": CHANNELS[n % 3], "data": n}} for n in range(200)]
    replies = await batch(node, commands)
    offsets: dict[str, list[int]] = {}
    for command, reply in zip(commands, replies, strict=True):
        offsets.setdefault(command["publish"]["channel"], []).append(reply["publish"]["offset"])
    for channel in CHANNELS[:3]:
        assert offsets[channel] == list(range(1, len(offsets[channel]) + 1))
        assert await history(node, channel) == [n for n in range(200) if CHANNELS[n % 3] == channel]


async def test_a_failing_command_answers_its_error_in_its_place(node: Node) -> None:
    commands: list[dict[str, Any]] = [{"publish": {"channel": "h:a", "data": n}} for n in range(6)]
    commands[2] = {"publish": {"channel": "unknown:x", "data": 1}}  # no such namespace
    commands[4] = {"publish": {"channel": "h:a"}}  # no data
    commands.insert(5, {"publish": {"channel": "h:a", "bogus": 1}})  # undecodable
    replies = await batch(node, commands)
    assert [r["publish"]["offset"] for r in (replies[0], replies[1], replies[3], replies[6])] == [
        1,
        2,
        3,
        4,
    ]
    assert [replies[n]["error"]["code"] for n in (2, 4, 5)] == [102, 107, 107]
    assert await history(node, "h:a") == [0, 1, 3, 5]


async def test_a_reading_command_sees_the_publications_before_it(node: Node) -> None:
    conn = Conn(node)
    await conn.connect("alice")
    await conn.subscribe("h:b", cid=2)
    commands: list[dict[str, Any]] = [
        *({"publish": {"channel": "h:b", "data": n}} for n in range(40)),
        {"history": {"channel": "h:b", "limit": -1}},
        {"presence_stats": {"channel": "h:b"}},
        {"broadcast": {"channels": ["h:b", "h:c", "h:b"], "data": "x"}},
        {"publish": {"channel": "h:b", "data": 40}},
        {"history": {"channel": "h:b", "limit": -1}},
    ]
    replies = await batch(node, commands)
    assert [p["data"] for p in replies[40]["history"]["publications"]] == list(range(40))
    assert replies[41]["presence_stats"] == {"num_clients": 1, "num_users": 1}
    offsets = [r["result"]["offset"] for r in replies[42]["broadcast"]["responses"]]
    assert offsets == [41, 1, 42]
    assert replies[43]["publish"]["offset"] == 43
    assert [p["data"] for p in replies[44]["history"]["publications"]][-4:] == [39, "x", "x", 40]


async def test_consecutive_publications_share_engine_round_trips(
    redis_node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = redis_node.engine
    assert isinstance(engine, RedisEngine)
    sizes: list[int] = []
    pipeline = engine.batcher._pipeline

    async def counted(client: Any, calls: list[Any]) -> list[Any]:
        sizes.append(len(calls))
        return await pipeline(client, calls)

    monkeypatch.setattr(engine.batcher, "_pipeline", counted)
    await batch(redis_node, [{"publish": {"channel": "h:a", "data": n}} for n in range(32)])
    # One pipeline for the 32 publications (a sequential batch once paid one each).
    assert max(sizes) == 32
