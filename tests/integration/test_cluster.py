"""A cluster: three `tidings serve` processes on one real redis-server.

centrifuge-python clients on nodes A and C, `cent` publishing through node B:
delivery, presence, join/leave and history are the same from every node; the
user register lets user_status and disconnect reach a user on another node;
heartbeats make `info` list the live nodes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cent import AsyncClient, PublishRequest

from tests.conftest import ServerProcess
from tests.integration.cluster_support import (
    cluster_settings,
    node_names,
    start_nodes,
    wait_for,
)
from tests.integration.support.api import api_call
from tests.integration.support.sdk import connecting
from tidings.testing.redis import RedisCluster


async def test_publication_through_b_reaches_clients_on_a_and_c(
    redis_nodes: list[ServerProcess],
) -> None:
    a, b, c = redis_nodes
    async with connecting(a) as connect:
        on_a = await connect("alice")
        on_c = await connect("carol", srv=c)
        _, rec_a = await on_a.subscribed("news", join_leave=True)
        _, rec_c = await on_c.subscribed("news", join_leave=True)
        # carol's join reaches alice across nodes (and not carol herself)
        joined = await rec_a.wait("join", lambda ctx: ctx.info.user == "carol")
        assert joined

        api = AsyncClient(b.api_url, b.api_key)
        for n in range(5):
            await api.publish(PublishRequest(channel="news", data={"n": n}))
        pubs_a = await rec_a.wait("publication", count=5)
        pubs_c = await rec_c.wait("publication", count=5)
        assert [p.pub.data["n"] for p in pubs_a] == list(range(5))
        assert [p.pub.data["n"] for p in pubs_c] == list(range(5))
        assert [p.pub.offset for p in pubs_a] == [p.pub.offset for p in pubs_c] == [1, 2, 3, 4, 5]

        # presence and history: the same answer from every node
        answers = []
        for node in (a, b, c):
            presence = await api_call(node, "presence", {"channel": "news"})
            history = await api_call(node, "history", {"channel": "news", "limit": 10})
            users = sorted(info["user"] for info in presence["presence"].values())
            answers.append((users, [json.dumps(p["data"]) for p in history["publications"]]))
        assert answers[0] == answers[1] == answers[2]
        assert answers[0][0] == ["alice", "carol"]
        assert len(answers[0][1]) == 5

        # carol leaves: alice hears it, presence forgets her everywhere
        await on_c.close()
        await rec_a.wait("leave", lambda ctx: ctx.info.user == "carol")

        async def carol_gone() -> bool:
            for node in (a, b, c):
                presence = await api_call(node, "presence", {"channel": "news"})
                if any(i["user"] == "carol" for i in presence["presence"].values()):
                    return False
            return True

        await wait_for(carol_gone, "carol to leave presence on every node")


async def test_user_status_and_disconnect_reach_another_node(
    redis_nodes: list[ServerProcess],
) -> None:
    a, b, _ = redis_nodes
    async with connecting(a) as connect:
        dave = await connect("dave")

        async def status() -> Any:
            result = await api_call(b, "user_status", {"users": ["dave", "nobody"]})
            statuses = {s["user"]: s for s in result["statuses"]}
            return statuses if statuses["dave"]["online"] else None

        statuses = await wait_for(status, "dave online as seen from node B")
        assert statuses["dave"]["connections"] == 1
        assert not statuses["nobody"]["online"]
        conns = await api_call(b, "user_connections", {"user": "dave"})
        assert len(conns["connections"]) == 1

        stop = {"code": 4501, "reason": "bye"}  # 4500-4999: terminal, the SDK stays away
        await api_call(b, "disconnect", {"user": "dave", "disconnect": stop})
        (disconnected,) = await dave.rec.wait("disconnected")
        assert (disconnected.code, disconnected.reason) == (4501, "bye")


async def test_info_lists_live_nodes_and_forgets_a_killed_one(
    redis_nodes: list[ServerProcess],
) -> None:
    a, b, c = redis_nodes

    async def three() -> bool:
        return await node_names(b) == ["node-0", "node-1", "node-2"]

    await wait_for(three, "info on node B to list three nodes")
    c.stop(9)

    async def two() -> bool:
        return await node_names(b) == ["node-0", "node-1"]

    await wait_for(two, "node C to disappear from info")
    assert await node_names(a) == ["node-0", "node-1"]


async def test_on_a_redis_cluster_with_sharded_pubsub(
    server_factory: Callable[..., ServerProcess], redis_cluster: RedisCluster
) -> None:
    settings = cluster_settings(redis_cluster.urls, cluster=True, durable_allow_volatile=True)
    a, b, c = start_nodes(server_factory, settings)
    async with connecting(a) as connect:
        on_a = await connect("alice")
        on_c = await connect("carol", srv=c)
        channels = [f"room{n}" for n in range(6)]  # spread over the cluster's slots
        recs_a = [(await on_a.subscribed(ch))[1] for ch in channels]
        recs_c = [(await on_c.subscribed(ch))[1] for ch in channels]
        api = AsyncClient(b.api_url, b.api_key)
        for ch in channels:
            await api.publish(PublishRequest(channel=ch, data={"to": ch}))
        for ch, rec_a, rec_c in zip(channels, recs_a, recs_c, strict=True):
            (pub_a,) = await rec_a.wait("publication")
            (pub_c,) = await rec_c.wait("publication")
            assert pub_a.pub.data == pub_c.pub.data == {"to": ch}
        # sharded PUB/SUB: the nodes SSUBSCRIBE on the slot's primary, never plain SUBSCRIBE
        shard_channels = [
            srv.cli("PUBSUB", "SHARDCHANNELS").split() for srv in redis_cluster.servers
        ]
        plain_channels = [srv.cli("PUBSUB", "CHANNELS").split() for srv in redis_cluster.servers]
        assert sum(len(found) for found in shard_channels) >= len(channels), shard_channels
        assert plain_channels == [[], [], []], plain_channels
        await wait_for(lambda: _three(b), "three nodes in info")


async def _three(node: ServerProcess) -> bool:
    return await node_names(node) == ["node-0", "node-1", "node-2"]


async def test_broadcast_all_reaches_every_user_of_every_node_once(
    redis_nodes: list[ServerProcess],
) -> None:
    a, b, c = redis_nodes
    async with connecting(a) as connect:
        conns = {
            "u-a": [await connect("u-a")],
            "u-b": [await connect("u-b", srv=b)],
            "u-c": [await connect("u-c", srv=c)],
            # one user on two nodes: one publication in their channel, seen by both
            "u-ac": [await connect("u-ac"), await connect("u-ac", srv=c)],
        }
        for user_conns in conns.values():
            for conn in user_conns:
                await conn.rec.wait("subscribed")
        await wait_for(lambda: _three(b), "three nodes in info")

        async def heard_of_all_users() -> bool:
            info = await api_call(b, "info", {})
            return sum(node["num_users"] for node in info["nodes"]) == 5  # u-ac on two nodes

        await wait_for(heard_of_all_users, "heartbeats with every node's users")
        result = await api_call(b, "broadcast_all", {"data": {"hello": "all"}, "rate": 100})
        assert result["users"] == 5
        for user, user_conns in conns.items():
            for conn in user_conns:
                (pub,) = await conn.rec.wait("publication")
                assert pub.channel == f"#{user}" and pub.pub.data == {"hello": "all"}
        history = await api_call(c, "history", {"channel": "#u-ac", "limit": 10})
        assert len(history["publications"]) == 1, "a user on two nodes got it twice"
