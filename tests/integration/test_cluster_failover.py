"""Two `tidings serve` nodes on a Redis Cluster with replicas: the primary of a channel's
slot is killed (kill -9) mid-stream of durable publishes (`durable_replicas = 1`).

Publishes answer error 100 until the replica has taken over and has a replica
of its own again (the old primary, restarted), then succeed; the
subscriber on the other node stays connected, its subscription is made to recover
from the stream the replica holds, and no acknowledged publication is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from redis.crc import key_slot

from tests.conftest import ServerProcess
from tests.integration.cluster_support import cluster_settings, start_nodes, wait_for
from tests.integration.support.sdk import connecting
from tests.integration.test_cluster_faults import TOTAL, Publisher, received
from tidings.store.redis_streams import pubsub_channel
from tidings.testing.redis import RedisCluster

CHANNEL = "d:stream"


async def test_killed_primary_of_a_channel_loses_no_acknowledged_publication(
    server_factory: Callable[..., ServerProcess], redis_cluster_with_replicas: RedisCluster
) -> None:
    cluster = redis_cluster_with_replicas
    settings = cluster_settings(
        cluster.urls, cluster=True, durable_allow_volatile=True, durable_replicas=1
    )
    a, b = start_nodes(server_factory, settings, count=2)
    slot = key_slot(pubsub_channel(settings["redis_prefix"], CHANNEL).encode())
    async with connecting(a) as connect:
        alice = await connect("alice")
        _sub, rec = await alice.subscribed(CHANNEL)
        publisher = Publisher(b, CHANNEL)
        stream = asyncio.create_task(publisher.run())
        await publisher.halfway.wait()

        primary = cluster.owner(slot)
        replica = cluster.replica_of(primary)
        primary.kill()
        publisher.resume.set()  # the back end keeps trying (same idempotency keys)

        async def taken_over() -> bool:
            return await asyncio.to_thread(_owned_by, cluster, slot, replica)

        await wait_for(taken_over, "the replica to take over the slot", within=20)
        assert publisher.errors, "publishes succeeded while the slot had no primary"
        # durable_replicas = 1 needs a replica again: the old primary comes back as one
        await asyncio.to_thread(primary.start)
        await asyncio.wait_for(stream, 30)

        async def everything() -> bool:
            return set(received(rec)) >= set(range(TOTAL))

        await wait_for(everything, "every acknowledged publication", within=20)
        lost = set(publisher.acknowledged) - set(received(rec))
        assert lost == set(), f"lost {sorted(lost)}"
        assert {e["code"] for e in publisher.errors} <= {100}, publisher.errors
        assert not alice.rec.of("disconnected"), "the client was disconnected by the failover"
        # node A was told the channel moved and made the subscription recover
        again = rec.of("subscribed")[1:]
        assert again and all(ctx.was_recovering for ctx in again), rec.events
        assert again[-1].recovered, again


def _owned_by(cluster: RedisCluster, slot: int, server: object) -> bool:
    try:
        return cluster.owner(slot) is server
    except Exception:
        return False
