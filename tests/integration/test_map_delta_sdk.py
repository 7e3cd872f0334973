"""Per-key fossil deltas of map channels, applied by the official centrifuge npm SDK (Node).

The SDK's map subscription asks for `delta: "fossil"`; `map_publish` with
`delta: true` changes a few fields of a JSON document per key, keys
interleaved. The SDK must show every value exactly (it applies each delta to
the key's previous value) and count most of them as deltas; a recovery after
a reconnect brings per-key deltas too. On one node, then on two nodes on Redis.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.conftest import ServerProcess
from tests.integration.cluster_support import cluster_settings, durable_redis, start_nodes
from tests.integration.support.node_sdk import SdkClient, sdk_clients
from tests.integration.test_api import raw_post
from tests.integration.test_map_sdk import MAP_NS, SCRIPT
from tidings.testing.redis import RedisServer

DELTA_MAP_NS: dict[str, Any] = {**MAP_NS, "allowed_delta_types": ["fossil"]}


def document(key: str, version: int) -> dict[str, Any]:
    """A JSON document of a few hundred bytes whose version changes a few fields."""
    return {
        "id": key,
        "title": f"Match {key}: the home team against the visitors",
        "score": {"home": version // 3, "away": version // 5},
        "minute": version,
        "events": [{"type": "goal", "minute": m, "player": f"player-{m}"} for m in range(3)],
        "venue": {"name": "Central Stadium", "city": "Springfield", "capacity": 40000},
    }


async def api(server: ServerProcess, method: str, body: dict[str, Any]) -> dict[str, Any]:
    status, reply = await raw_post(server, f"/api/{method}", json.dumps(body).encode())
    assert status == 200 and "error" not in reply, reply
    result: dict[str, Any] = reply.get("result", {})
    return result


async def put(server: ServerProcess, channel: str, key: str, data: Any) -> None:
    await api(server, "map_publish", {"channel": channel, "key": key, "data": data, "delta": True})


async def exercise(writer: ServerProcess, client: SdkClient, channel: str) -> None:
    """Interleaved changes of three keys, a new key, a removal and a key set again."""
    sync = await client.next("sync")
    assert {e["key"]: e["data"] for e in sync["entries"]} == {
        k: document(k, 0) for k in ("a", "b", "c")
    }
    expected: list[dict[str, Any]] = []
    for version in range(1, 5):
        for key in ("a", "b", "c"):
            await put(writer, channel, key, document(key, version))
            expected.append({"key": key, "data": document(key, version), "removed": False})
    await put(writer, channel, "d", document("d", 1))
    expected.append({"key": "d", "data": document("d", 1), "removed": False})
    await api(writer, "map_remove", {"channel": channel, "key": "b"})
    expected.append({"key": "b", "data": "", "removed": True})  # as from Centrifugo
    await put(writer, channel, "b", document("b", 9))
    expected.append({"key": "b", "data": document("b", 9), "removed": False})
    await put(writer, channel, "a", {"small": 1})  # a delta larger than the value: sent whole
    expected.append({"key": "a", "data": {"small": 1}, "removed": False})
    for want in expected:
        assert await client.next("update") == want


async def test_sdk_applies_per_key_deltas_and_recovers(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory({"namespaces": {"m": DELTA_MAP_NS}})
    for key in ("a", "b", "c"):
        await put(server, "m:doc", key, document(key, 0))
    async with sdk_clients(server, SCRIPT) as start:
        client = await start("alice", "m:doc", "delta")
        await exercise(server, client, "m:doc")
        await client.send("stats")
        stats = await client.next("stats")
        # Versions 1..4 of a, b and c come as deltas against each key's previous value
        # (the state's, then the last change's); the state, the new key d, b set again
        # after its removal and the small a come whole.
        assert stats["numDeltaPayloads"] == 12, stats
        assert stats["numFullPayloads"] == 6, stats
        assert stats["bytesReceived"] < stats["bytesDecoded"], stats

        # Missed changes come back in the subscribe reply (two: one page of this SDK),
        # per-key deltas among them: c21 against c20.
        await client.send("disconnect")
        await client.next("disconnected")
        await put(server, "m:doc", "c", document("c", 20))
        await put(server, "m:doc", "c", document("c", 21))
        await client.send("connect")
        assert (await client.next("subscribed"))["recovered"] is True
        for version in (20, 21):
            want = {"key": "c", "data": document("c", version), "removed": False}
            assert await client.next("update") == want
        # Live ones: deltas against the recovered values.
        for version in (22, 23):
            await put(server, "m:doc", "c", document("c", version))
            assert (await client.next("update"))["data"] == document("c", version)
        await client.send("stats")
        after = await client.next("stats")
        assert after["numDeltaPayloads"] == stats["numDeltaPayloads"] + 3, after


async def test_protobuf_sdk_applies_per_key_deltas(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory({"namespaces": {"m": DELTA_MAP_NS}})
    for key in ("a", "b", "c"):
        await put(server, "m:doc", key, document(key, 0))
    async with sdk_clients(server, SCRIPT) as start:
        client = await start("dave", "m:doc", "delta-protobuf")
        await exercise(server, client, "m:doc")
        await client.send("stats")
        stats = await client.next("stats")
        assert stats["numDeltaPayloads"] == 12, stats


async def test_without_the_namespace_allowing_it_values_come_whole(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory({"namespaces": {"m": MAP_NS}})
    await put(server, "m:plain", "a", document("a", 0))
    async with sdk_clients(server, SCRIPT) as start:
        client = await start("bob", "m:plain", "delta")
        assert (await client.next("sync"))["entries"] == [{"key": "a", "data": document("a", 0)}]
        await put(server, "m:plain", "a", document("a", 1))
        assert (await client.next("update"))["data"] == document("a", 1)
        await client.send("stats")
        assert (await client.next("stats"))["numDeltaPayloads"] == 0


async def test_deltas_across_two_nodes_on_redis(
    server_factory: Callable[..., ServerProcess],
    redis_factory: Callable[..., RedisServer],
) -> None:
    """Changes written through node A reach a delta subscriber on node B as deltas."""
    settings = cluster_settings([durable_redis(redis_factory).url], namespaces={"m": DELTA_MAP_NS})
    a, b = start_nodes(server_factory, settings, count=2)
    for key in ("a", "b", "c"):
        await put(a, "m:doc", key, document(key, 0))
    async with sdk_clients(b, SCRIPT) as start:
        client = await start("carol", "m:doc", "delta")
        await exercise(a, client, "m:doc")
        await client.send("stats")
        stats = await client.next("stats")
        assert stats["numDeltaPayloads"] >= 6, stats  # 12 as on one node, unless one is late
