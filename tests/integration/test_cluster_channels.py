"""The `channels` API of a cluster: every node lists every node's channels, counts summed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.conftest import ServerProcess
from tests.integration.cluster_support import cluster_settings, node_names, start_nodes, wait_for
from tests.integration.support.api import api_call, api_raw
from tests.integration.support.sdk import connecting
from tidings.testing.redis import RedisCluster, RedisServer


async def _channels(node: ServerProcess, pattern: str = "") -> dict[str, int]:
    found = await api_call(node, "channels", {"pattern": pattern})
    return {name: c["num_clients"] for name, c in found["channels"].items()}


async def _check(nodes: list[ServerProcess]) -> None:
    names = sorted(f"node-{n}" for n in range(len(nodes)))

    async def all_live() -> bool:
        return all([await node_names(node) == names for node in nodes])

    await wait_for(all_live, "every node to list every node")
    async with connecting(nodes[0]) as connect:
        # room0: 1 client on the first node and 2 on the last; roomN: one node only
        alice = await connect("alice")
        await alice.subscribed("room0")
        await alice.subscribed("room1")
        for user in ("bob", "carol"):
            other = await connect(user, srv=nodes[-1])
            await other.subscribed("room0")
        dave = await connect("dave", srv=nodes[-1])
        await dave.subscribed("room2")
        await dave.subscribed("other")
        expected = {"room0": 3, "room1": 1, "room2": 1, "other": 1}

        async def everywhere() -> Any:
            answers = [await _channels(node) for node in nodes]
            # personal channels (#user) are subscribed server-side: leave them out
            answers = [{k: v for k, v in a.items() if not k.startswith("#")} for a in answers]
            return answers if all(a == expected for a in answers) else None

        await wait_for(everywhere, "the same channel counts from every node")
        for node in nodes:
            assert await _channels(node, "room*") == {"room0": 3, "room1": 1, "room2": 1}
        await dave.close()

        async def dave_gone() -> Any:
            return all(["room2" not in await _channels(node) for node in nodes])

        await wait_for(dave_gone, "room2 to go once its only subscriber left")


async def test_every_node_lists_every_nodes_channels_on_one_redis(
    server_factory: Callable[..., ServerProcess],
    redis_server: RedisServer,
) -> None:
    settings = cluster_settings([redis_server.url], durable_allow_volatile=True)
    await _check(start_nodes(server_factory, settings))


async def test_every_node_lists_every_nodes_channels_on_a_redis_cluster(
    server_factory: Callable[..., ServerProcess], redis_cluster: RedisCluster
) -> None:
    settings = cluster_settings(redis_cluster.urls, cluster=True, durable_allow_volatile=True)
    await _check(start_nodes(server_factory, settings, count=2))


async def test_a_killed_node_makes_channels_fail_until_it_is_gone(
    server_factory: Callable[..., ServerProcess],
    redis_server: RedisServer,
) -> None:
    # a heartbeat timeout long enough that b is still listed when the call is made
    settings = cluster_settings(
        [redis_server.url], durable_allow_volatile=True, node_heartbeat_timeout=6.0
    )
    a, b = start_nodes(server_factory, settings, count=2)
    await wait_for(lambda: _listed(a, 2), "a to see b")
    b.stop(9)
    # until b leaves the heartbeat table, `channels` says it got no answer (never a part)
    body = await api_raw(a, "channels", {})
    assert body["error"]["code"] == 100, body
    assert "did not answer" in body["error"]["message"], body
    await wait_for(lambda: _listed(a, 1), "b to leave info", within=15.0)
    assert await api_call(a, "channels", {}) == {"channels": {}}


async def _listed(node: ServerProcess, count: int) -> bool:
    return len(await node_names(node)) == count
