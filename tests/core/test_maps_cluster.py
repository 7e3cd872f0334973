"""Map channels on a cluster: two nodes, keyed state in Redis, changes through the Redis broker.

The node's own broker wiring (subscribe counts, the broker port) is not part
of this module; the test wires the two nodes as that wiring does: each node
subscribes its broker to the channels it has map subscribers in, and its
port delivers what the broker hands it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.core.conftest import Conn, settle_client
from tests.core.test_maps import MAP_NS, as_map, subscribe_map
from tidings.broker.redis import RedisBroker
from tidings.core.maps import MapChannels
from tidings.core.node import Node
from tidings.engine.redis import RedisEngine, RedisSettings
from tidings.protocol.centrifuge.messages import ClientInfo, Publication
from tidings.store.base import Position
from tidings.store.keyed_redis import RedisKeyedStateStore


class DeliveringPort:
    """What a node's broker port does with publications: deliver them locally."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def on_publication(
        self, channel: str, pub: Publication, position: Position, delta: bool = False
    ) -> None:
        self.node.deliver(channel, pub)

    def on_join(self, channel: str, info: ClientInfo) -> None: ...

    def on_leave(self, channel: str, info: ClientInfo) -> None: ...

    def on_control(self, data: bytes) -> None: ...

    def on_lost_connection(self, error: str) -> None: ...

    def on_resubscribed(self, channels: list[str]) -> None: ...


@pytest.fixture
async def cluster(
    node_factory: Callable[..., Node], redis_server: Any
) -> AsyncIterator[tuple[Node, Node]]:
    settings = RedisSettings(addresses=[redis_server.url], prefix="maps-cluster")
    nodes, brokers = [], []
    for _ in range(2):
        node = node_factory(namespaces={"m": MAP_NS})
        broker = RedisBroker(RedisEngine(settings))
        await broker.start(DeliveringPort(node))
        node.maps = MapChannels(
            node, RedisKeyedStateStore(RedisEngine(settings), owns_engine=True), broker
        )
        nodes.append(node)
        brokers.append(broker)
    yield nodes[0], nodes[1]
    for broker in brokers:
        await broker.close()


async def test_state_and_changes_cross_nodes(cluster: tuple[Node, Node]) -> None:
    a, b = cluster
    for i in range(7):
        await a.maps.publish("m:game", f"k{i}", b"%d" % i)
    watcher = Conn(b)
    await watcher.connect("w")
    assert b.maps.broker is not None
    await b.maps.broker.subscribe("m:game")
    live = await subscribe_map(watcher, "m:game", limit=3)
    assert as_map(live["_state"], live["_stream"]) == {f"k{i}": i for i in range(7)}

    await a.maps.publish("m:game", "k1", b'"moved"')
    await a.maps.remove("m:game", "k2")
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(5):
        while len(got) < 2:
            await asyncio.sleep(0.01)
            await settle_client(watcher.client)
            got += [p["push"]["pub"] for p in watcher.transport.take() if "push" in p]
    assert [(p["key"], p.get("removed", False), p["offset"]) for p in got] == [
        ("k1", False, 8),
        ("k2", True, 9),
    ]
    # Node A sees the same state through the store.
    assert await a.maps.store.stats("m:game") == 6
    await b.maps.broker.unsubscribe("m:game")
