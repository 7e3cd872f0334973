"""Map presence with the official centrifuge npm SDK (5.8, in Node) against `tidings serve`.

Members subscribe to a stream channel with centrifuge-python; watchers use
the npm SDK's `newMapClientsSubscription` (type 2) and
`newMapUsersSubscription` (type 3) on the presence channels Centrifugo v6
names `<prefix><channel>`: they get who is there, then joins and leaves as
map updates.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import OPEN_CHANNEL, ServerProcess
from tests.integration.cluster_support import cluster_settings, durable_redis, start_nodes
from tests.integration.support.node_sdk import SdkClient, sdk_clients
from tests.integration.support.sdk import connecting
from tidings.testing.redis import RedisServer

SCRIPT = Path(__file__).parent / "support" / "map_client.cjs"
WATCHED = "room:lobby"


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    presence = {
        "map_stream_size": 100,
        "map_stream_ttl": "5m",
        "map_key_ttl": "3s",
        "allow_subscribe_for_client": True,
    }
    room = {
        **OPEN_CHANNEL,
        "map_clients_presence_channel_prefix": "pc:",
        "map_users_presence_channel_prefix": "pu:",
    }
    namespaces = {
        "room": room,
        "pc": {**presence, "subscription_type": "map_clients"},
        "pu": {**presence, "subscription_type": "map_users"},
    }
    return server_factory({"namespaces": namespaces})


@pytest.fixture
async def sdk(server: ServerProcess) -> AsyncIterator[Callable[..., Any]]:
    async with sdk_clients(server, SCRIPT) as start:
        yield start


async def test_clients_presence_as_a_map(server: ServerProcess, sdk: Callable[..., Any]) -> None:
    async with connecting(server) as connect:
        alice = await connect("alice")
        await alice.subscribed(WATCHED)
        watcher: SdkClient = await sdk("watcher", "pc:" + WATCHED, "clients")
        sync = await watcher.next("sync")
        assert [e["user"] for e in sync["entries"]] == ["alice"]
        alice_client = sync["entries"][0]["key"]

        bob = await connect("bob")
        await bob.subscribed(WATCHED)
        joined = await watcher.next("update")
        assert joined["user"] == "bob" and joined["removed"] is False
        assert joined["key"] != alice_client

        await alice.close()  # a disconnect is a leave
        left = await watcher.next("update")
        assert left == {"key": alice_client, "removed": True}

        # Refreshed while subscribed: bob's entry outlives the key TTL (3s).
        await asyncio.sleep(4)
        late: SdkClient = await sdk("late", "pc:" + WATCHED, "clients")
        assert [e["user"] for e in (await late.next("sync"))["entries"]] == ["bob"]


async def test_users_presence_one_entry_per_user(
    server: ServerProcess, sdk: Callable[..., Any]
) -> None:
    async with connecting(server) as connect:
        first = await connect("carol")
        await first.subscribed(WATCHED)
        second = await connect("carol")
        await second.subscribed(WATCHED)
        watcher: SdkClient = await sdk("watcher", "pu:" + WATCHED, "users")
        sync = await watcher.next("sync")
        assert sync["entries"] == [{"key": "carol"}]
        dave = await connect("dave")
        await dave.subscribed(WATCHED)
        assert await watcher.next("update") == {"key": "dave", "removed": False}
        # A user leaves when the key TTL passes after its last connection went.
        await dave.close()
        assert await watcher.next("update") == {"key": "dave", "removed": True}


async def test_a_presence_channel_takes_its_own_type_only(
    server: ServerProcess, sdk: Callable[..., Any]
) -> None:
    wrong: SdkClient = await sdk("watcher", "pu:" + WATCHED, "clients")
    refused = await wrong.next("unsubscribed")
    assert refused["code"] == 103  # as Centrifugo: not a type this namespace takes


async def test_presence_across_two_nodes_on_redis(
    server_factory: Callable[..., ServerProcess],
    redis_factory: Callable[..., RedisServer],
) -> None:
    """A member on node A shows in a watcher's map on node B, and leaves it."""
    namespaces = {
        "room": {**OPEN_CHANNEL, "map_clients_presence_channel_prefix": "pc:"},
        "pc": {
            "subscription_type": "map_clients",
            "map_stream_size": 100,
            "map_stream_ttl": "5m",
            "map_key_ttl": "30s",
            "allow_subscribe_for_client": True,
        },
    }
    settings = cluster_settings([durable_redis(redis_factory).url], namespaces=namespaces)
    a, b = start_nodes(server_factory, settings, count=2)
    async with sdk_clients(b, SCRIPT) as start, connecting(a) as connect:
        watcher: SdkClient = await start("watcher", "pc:" + WATCHED, "clients")
        assert (await watcher.next("sync"))["entries"] == []
        erin = await connect("erin")
        await erin.subscribed(WATCHED)
        joined = await watcher.next("update")
        assert joined["user"] == "erin" and joined["removed"] is False
        await erin.close()
        assert await watcher.next("update") == {"key": joined["key"], "removed": True}
