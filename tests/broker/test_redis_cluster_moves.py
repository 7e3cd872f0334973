"""The Redis broker on a Redis Cluster whose slots move: failover, a killed primary, resharding.

Two brokers (node A subscribed, node B publishing) on a 3-primary cluster with
a replica each. While the channel's slot changes owner, a publish either
succeeds or fails with `EngineUnavailable` (error 100), never silently; once
the cluster settles, publishes work again, node A is subscribed on the new
owner and has been told (`on_resubscribed`) so its subscribers recover any gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from msgspec import Raw
from redis.crc import key_slot

from tests.polling import until
from tidings.broker.redis import CONTROL, RedisBroker
from tidings.engine.redis import EngineUnavailable, RedisEngine, RedisSettings
from tidings.protocol.centrifuge.messages import Publication
from tidings.store.base import Position
from tidings.store.redis_streams import pubsub_channel
from tidings.testing.broker import RecordingPort
from tidings.testing.redis import RedisCluster, RedisServer

#: Bound of one publish attempt and of the whole settling (not timing assertions).
CALL_BOUND = 5.0
SETTLE_BOUND = 25.0
CHANNEL = "room"


@dataclass
class Pair:
    cluster: RedisCluster
    prefix: str
    a: RedisBroker
    b: RedisBroker
    port_a: RecordingPort
    acked: list[Position] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    sent: int = 0

    @property
    def slot(self) -> int:
        return key_slot(pubsub_channel(self.prefix, CHANNEL).encode())

    async def publish(self) -> bool:
        """One publish through B: True if acknowledged, False if refused with error 100."""
        self.sent += 1
        pub = Publication(data=Raw(b'{"n":%d}' % self.sent))
        try:
            position = await asyncio.wait_for(
                self.b.publish(CHANNEL, pub, size=1000, ttl=300), CALL_BOUND
            )
        except EngineUnavailable as exc:
            self.failures.append(str(exc))
            return False
        self.acked.append(position)
        return True

    async def publish_until_accepted(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_BOUND
        while not await self.publish():
            assert loop.time() < deadline, f"publishes still refused: {self.failures[-3:]}"
            await asyncio.sleep(0.1)

    def received(self) -> list[int]:
        return [pub.offset for pub in self.port_a.of(CHANNEL)]


@pytest.fixture
async def pair(redis_cluster_with_replicas: RedisCluster) -> AsyncIterator[Pair]:
    cluster = redis_cluster_with_replicas
    prefix = "t" + uuid.uuid4().hex[:8]
    settings = RedisSettings(
        cluster_addresses=cluster.urls, prefix=prefix, connect_timeout=0.5, command_timeout=0.5
    )
    engines = [RedisEngine(settings), RedisEngine(settings)]
    a = RedisBroker(engines[0], node_id="a", ping_interval=0.2)
    b = RedisBroker(engines[1], node_id="b", ping_interval=0.2)
    port_a = RecordingPort()
    await a.start(port_a)
    await b.start(RecordingPort())
    await a.subscribe(CHANNEL)
    found = Pair(cluster, prefix, a, b, port_a)
    assert await found.publish()
    await port_a.wait(lambda: found.received() == [1], "the first publication")
    yield found
    for broker, engine in zip((a, b), engines, strict=True):
        await broker.close()
        await engine.close()


async def _settled_and_flowing(pair: Pair) -> None:
    """After the move: A was told, and new publications reach it, in offset order."""
    await pair.port_a.wait(
        lambda: any(CHANNEL in channels for channels in pair.port_a.resubscribed),
        "node A to resubscribe the channel on its new primary",
    )
    await pair.publish_until_accepted()
    for _ in range(3):
        assert await pair.publish(), pair.failures[-1:]
    last = pair.acked[-1].offset
    await pair.port_a.wait(lambda: last in pair.received(), "publications after the move")
    received = pair.received()
    assert received == sorted(set(received)), "offsets out of order or repeated"
    # every acknowledged publication is in the history (the recovery path reads it)
    pubs, top = await pair.a.history.read(CHANNEL, Position(0, pair.acked[0].epoch), 10_000)
    offsets = [p.offset for p in pubs]
    assert {p.offset for p in pair.acked} <= set(offsets), (pair.acked, offsets)
    assert top.offset == last


async def _control_works(pair: Pair) -> None:
    before = len(pair.port_a.controls)
    await pair.b.publish_control(b"ping")
    await pair.port_a.wait(lambda: len(pair.port_a.controls) > before, "a control message")


async def test_manual_failover(pair: Pair) -> None:
    primary = pair.cluster.owner(pair.slot)
    replica = pair.cluster.replica_of(primary)
    pair.cluster.failover(replica, SETTLE_BOUND)
    assert pair.cluster.owner(pair.slot) is replica
    await _settled_and_flowing(pair)
    # a coordinated failover loses nothing: offsets continue in the same epoch
    assert [p.epoch for p in pair.acked] == [pair.acked[0].epoch] * len(pair.acked)
    assert [p.offset for p in pair.acked] == list(range(1, len(pair.acked) + 1))
    await _control_works(pair)


async def test_killed_primary(pair: Pair) -> None:
    primary = pair.cluster.owner(pair.slot)
    replica = pair.cluster.replica_of(primary)
    # Replication is asynchronous: a replica promoted before it had publication 1
    # starts the stream afresh (a new epoch), which is right but not this test's case.
    await until(lambda: _repl_offset(replica, "slave_repl_offset") >= _repl_offset(primary))
    primary.kill()
    # until the replica takes over: refused with a clear error, never a silent success
    assert not await pair.publish()
    assert "unavailable" in pair.failures[-1], pair.failures[-1]
    await _wait_owner(pair.cluster, pair.slot, replica)
    await _settled_and_flowing(pair)
    await _control_works(pair)


async def test_slot_migrated_to_another_primary(pair: Pair) -> None:
    source = pair.cluster.owner(pair.slot)
    target = next(s for s in _primaries(pair.cluster) if s is not source)
    pair.cluster.migrate_slot(pair.slot, target)
    pair.cluster.wait_settled(SETTLE_BOUND)
    assert pair.cluster.owner(pair.slot) is target
    await _settled_and_flowing(pair)
    # the keys moved with the slot: one stream, offsets continue
    assert [p.epoch for p in pair.acked] == [pair.acked[0].epoch] * len(pair.acked)
    assert [p.offset for p in pair.acked] == list(range(1, len(pair.acked) + 1))


async def test_control_channel_follows_its_slot(pair: Pair) -> None:
    slot = key_slot(pubsub_channel(pair.prefix, CONTROL).encode())
    source = pair.cluster.owner(slot)
    target = next(s for s in _primaries(pair.cluster) if s is not source)
    pair.cluster.migrate_slot(slot, target)
    pair.cluster.wait_settled(SETTLE_BOUND)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_BOUND
    while True:  # the first ones may go out before node A moved its subscription
        before = len(pair.port_a.controls)
        with contextlib.suppress(EngineUnavailable):
            await pair.b.publish_control(b"ping")
        await asyncio.sleep(0.2)
        if len(pair.port_a.controls) > before:
            break
        assert loop.time() < deadline, "control messages never reached node A again"


def _repl_offset(server: RedisServer, field: str = "master_repl_offset") -> int:
    for line in server.cli("info", "replication").splitlines():
        if line.startswith(field + ":"):
            return int(line.split(":", 1)[1])
    return -1


def _primaries(cluster: RedisCluster) -> list[RedisServer]:
    return [s for s in cluster.servers if s.running and "role:master" in s.cli("info")]


async def _wait_owner(cluster: RedisCluster, slot: int, server: RedisServer) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_BOUND
    while True:
        try:
            if cluster.owner(slot) is server:
                return
        except Exception:
            pass
        assert loop.time() < deadline, "the replica did not take over"
        await asyncio.sleep(0.1)
