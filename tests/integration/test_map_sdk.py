"""Map subscriptions with the official centrifuge npm SDK (5.8, in Node) against `tidings serve`.

The SDK's `newMapSubscription` pages the state (pageSize 2, so several pages),
catches up, goes live, and recovers after a reconnect; the server API's
`map_publish` / `map_remove` (Centrifugo v6 names) drive the changes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerProcess
from tests.integration.support.node_sdk import SdkClient, sdk_clients
from tests.integration.test_api import raw_post

SCRIPT = Path(__file__).parent / "support" / "map_client.cjs"

MAP_NS: dict[str, Any] = {
    "subscription_type": "map",
    "map_stream_size": 100,
    "map_stream_ttl": "5m",
    "allow_subscribe_for_client": True,
    "allow_publish_for_subscriber": True,
}


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory({"namespaces": {"m": MAP_NS}})


@pytest.fixture
async def sdk(server: ServerProcess) -> AsyncIterator[Callable[[str, str], Any]]:
    async with sdk_clients(server, SCRIPT) as start:
        yield start


async def api(server: ServerProcess, method: str, body: dict[str, Any]) -> dict[str, Any]:
    status, reply = await raw_post(server, f"/api/{method}", json.dumps(body).encode())
    assert status == 200 and "error" not in reply, reply
    result: dict[str, Any] = reply.get("result", {})
    return result


async def test_sdk_map_subscription_sync_updates_and_recovery(
    server: ServerProcess, sdk: Callable[[str, str], Any]
) -> None:
    for i in range(5):
        await api(server, "map_publish", {"channel": "m:board", "key": f"k{i}", "data": {"v": i}})
    client: SdkClient = await sdk("alice", "m:board")
    sync = await client.next("sync")
    assert {e["key"]: e["data"] for e in sync["entries"]} == {f"k{i}": {"v": i} for i in range(5)}
    subscribed = dict(client.events)["subscribed"]
    assert subscribed["recoverable"] is True

    await api(server, "map_publish", {"channel": "m:board", "key": "k1", "data": {"v": 10}})
    assert await client.next("update") == {"key": "k1", "data": {"v": 10}, "removed": False}
    await api(server, "map_remove", {"channel": "m:board", "key": "k2"})
    assert await client.next("update") == {"key": "k2", "removed": True}

    # The SDK's own map publish and remove.
    await client.send('publish k9 {"v": 9}')
    assert await client.next("update") == {"key": "k9", "data": {"v": 9}, "removed": False}
    await client.send("remove k9")
    assert (await client.next("update"))["removed"] is True

    # Missed changes, removals included, are recovered after a reconnect (no new sync).
    await client.send("disconnect")
    await client.next("disconnected")
    await api(server, "map_publish", {"channel": "m:board", "key": "k3", "data": {"v": 30}})
    await api(server, "map_remove", {"channel": "m:board", "key": "k0"})
    await client.send("connect")
    again = await client.next("subscribed")
    assert again["wasRecovering"] is True and again["recovered"] is True
    first = await client.next("update")
    second = await client.next("update")
    assert [first, second] == [
        {"key": "k3", "data": {"v": 30}, "removed": False},
        {"key": "k0", "removed": True},
    ]
    assert [kind for kind, _ in client.events].count("sync") == 1


async def test_sdk_starts_over_after_map_clear(
    server: ServerProcess, sdk: Callable[[str, str], Any]
) -> None:
    await api(server, "map_publish", {"channel": "m:c", "key": "a", "data": 1})
    client: SdkClient = await sdk("bob", "m:c")
    assert (await client.next("sync"))["entries"] == [{"key": "a", "data": 1}]
    await client.send("disconnect")
    await client.next("disconnected")
    await api(server, "map_clear", {"channel": "m:c"})
    await api(server, "map_publish", {"channel": "m:c", "key": "b", "data": 2})
    await client.send("connect")
    # Another epoch: 112, and the SDK loads a fresh snapshot.
    assert (await client.next("sync"))["entries"] == [{"key": "b", "data": 2}]


async def test_sdk_sees_tags_and_no_suppressed_writes(
    server: ServerProcess, sdk: Callable[[str, str], Any]
) -> None:
    """Tags reach the SDK's update; writes suppressed by a condition reach nobody."""
    client: SdkClient = await sdk("alice", "m:cond")
    await client.next("subscribed")
    tagged = {"channel": "m:cond", "key": "a", "data": 1, "tags": {"team": "red"}}
    await api(server, "map_publish", tagged | {"idempotency_key": "once", "version": 3})
    assert await client.next("update") == {
        "key": "a",
        "data": 1,
        "removed": False,
        "tags": {"team": "red"},
    }
    repeat = await api(server, "map_publish", tagged | {"idempotency_key": "once", "data": 2})
    assert repeat["suppress_reason"] == "idempotency"
    old = await api(
        server, "map_publish", {"channel": "m:cond", "key": "a", "data": 3, "version": 2}
    )
    assert old["suppress_reason"] == "version"
    exists = await api(
        server, "map_publish", {"channel": "m:cond", "key": "a", "data": 4, "key_mode": "if_new"}
    )
    assert exists["suppress_reason"] == "key_exists"
    await api(server, "map_publish", {"channel": "m:cond", "key": "marker", "data": 5})
    assert (await client.next("update"))["key"] == "marker"  # nothing came before it
    await api(server, "map_remove", {"channel": "m:cond", "key": "a"})
    assert await client.next("update") == {"key": "a", "removed": True, "tags": {"team": "red"}}
