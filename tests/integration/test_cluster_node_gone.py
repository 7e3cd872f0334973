"""A node killed with `kill -9`: the others stop counting its clients within the heartbeat
timeout (presence, presence_stats, user_status), not after the 60 s entry TTL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.conftest import ServerProcess
from tests.integration.cluster_support import cluster_settings, node_names, start_nodes, wait_for
from tests.integration.support.api import api_call
from tests.integration.support.sdk import connecting
from tidings.testing.redis import RedisServer


async def test_presence_and_register_forget_a_killed_node_within_the_heartbeat_timeout(
    server_factory: Callable[..., ServerProcess],
    redis_server: RedisServer,
) -> None:
    settings = cluster_settings([redis_server.url], durable_allow_volatile=True)
    a, b = start_nodes(server_factory, settings, count=2)

    async def both() -> bool:
        return await node_names(a) == ["node-0", "node-1"]

    await wait_for(both, "a to see b")
    async with connecting(a) as connect:
        alice = await connect("alice")
        await alice.subscribed("room")
        bob = await connect("bob", srv=b)
        await bob.subscribed("room")

        async def stats() -> Any:
            return await api_call(a, "presence_stats", {"channel": "room"})

        async def bob_status() -> bool:
            result = await api_call(a, "user_status", {"users": ["bob"]})
            return bool(result["statuses"][0]["online"])

        await wait_for(lambda: _equal(stats, {"num_clients": 2, "num_users": 2}), "both present")
        assert await bob_status()
        b.stop(9)
        # heartbeat timeout 1.5 s here; entries would otherwise live 60 s
        await wait_for(
            lambda: _equal(stats, {"num_clients": 1, "num_users": 1}), "bob to stop counting"
        )
        presence = await api_call(a, "presence", {"channel": "room"})
        assert [p["user"] for p in presence["presence"].values()] == ["alice"]

        async def bob_offline() -> bool:
            return not await bob_status()

        await wait_for(bob_offline, "bob offline in the register")


async def _equal(read: Callable[[], Any], expected: Any) -> bool:
    return bool(await read() == expected)
