"""The Redis broker against hostile or odd traffic on its PUB/SUB channels."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from msgspec import Raw
from redis.asyncio import Redis

from tidings.broker.redis import CONTROL, RedisBroker
from tidings.engine.redis import RedisEngine, RedisSettings
from tidings.protocol.centrifuge.messages import ClientInfo, Publication
from tidings.store.redis_streams import pubsub_channel
from tidings.testing.broker import RecordingPort
from tidings.testing.redis import RedisServer


@pytest.fixture
async def broker(redis_server: RedisServer) -> AsyncIterator[tuple[RedisBroker, RecordingPort]]:
    engine = RedisEngine(RedisSettings([redis_server.url], prefix="hostile"))
    broker = RedisBroker(engine, node_id="n1")
    port = RecordingPort()
    await broker.start(port)
    yield broker, port
    await broker.close()
    await engine.close()


GARBAGE = [
    b"",
    b"no colons",
    b"9p:1:e:{}",  # unknown version
    b"1p:x:e:{}",  # offset not a number
    b"1p:1:e:not json",
    b"1p:1:e:" + b"\xff" * 10,
    b"1j:0::[1,2]",
    b"1z:0::{}",  # unknown kind
    b"1c:0::\x93\x01",  # control on a channel
]


async def test_garbage_is_dropped_and_later_messages_flow(
    broker: tuple[RedisBroker, RecordingPort], redis_server: RedisServer
) -> None:
    node, port = broker
    await node.subscribe("ch")
    outsider = Redis.from_url(redis_server.url)
    try:
        for junk in GARBAGE:
            await outsider.publish(pubsub_channel("hostile", "ch"), junk)
            await outsider.publish(pubsub_channel("hostile", CONTROL), junk)
        await outsider.publish(
            pubsub_channel("hostile", CONTROL), b"1c:0::\x94\x01\xa1x\xa0\xc4\x01z"
        )
    finally:
        await outsider.aclose()
    await node.publish("ch", Publication(data=Raw(b'{"ok":1}')), size=10, ttl=60)
    await port.wait(lambda: bool(port.of("ch")), "the valid publication after the garbage")
    assert [bytes(p.data) for p in port.of("ch")] == [b'{"ok":1}']
    assert port.joins == [] and port.leaves == []
    assert port.controls == [b"z"], "only the well-formed control message from node x"


async def test_joins_and_leaves_are_not_history(broker: tuple[RedisBroker, RecordingPort]) -> None:
    node, port = broker
    await node.subscribe("room")
    await node.publish_join("room", ClientInfo(user="u", client="c"))
    await port.wait(lambda: bool(port.joins), "the join")
    pubs, top = await node.history.read("room")
    assert pubs == [] and top.offset == 0


def calls(server: RedisServer, command: str) -> int:
    for line in server.cli("info", "commandstats").splitlines():
        if line.startswith(f"cmdstat_{command}:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


async def test_subscriptions_of_one_turn_are_one_command(
    broker: tuple[RedisBroker, RecordingPort], redis_server: RedisServer
) -> None:
    node, _ = broker
    before = calls(redis_server, "subscribe")
    await asyncio.gather(*(node.subscribe(f"c{n}") for n in range(300)))
    assert calls(redis_server, "subscribe") == before + 1
    before = calls(redis_server, "unsubscribe")
    await asyncio.gather(*(node.unsubscribe(f"c{n}") for n in range(300)))
    for _ in range(200):  # unsubscribe does not wait for Redis: watch for the command
        if calls(redis_server, "unsubscribe") > before:
            break
        await asyncio.sleep(0.01)
    await node.subscribe("c0")  # one more round trip on the PUB/SUB connection
    assert calls(redis_server, "unsubscribe") == before + 1


async def test_publishes_of_one_turn_share_a_connection(
    broker: tuple[RedisBroker, RecordingPort], redis_server: RedisServer
) -> None:
    node, port = broker
    await node.subscribe("burst")
    connections = int(
        redis_server.cli("info", "stats").split("total_connections_received:")[1].split()[0]
    )
    positions = await asyncio.gather(
        *(node.publish("burst", Publication(data=Raw(b"1")), size=1000, ttl=60) for _ in range(500))
    )
    assert sorted(p.offset for p in positions) == list(range(1, 501))
    after = int(
        redis_server.cli("info", "stats").split("total_connections_received:")[1].split()[0]
    )
    assert after - connections <= 1, "a burst of publishes opened one connection per call"
    await port.wait(lambda: len(port.of("burst")) == 500, "every publication of the burst")
