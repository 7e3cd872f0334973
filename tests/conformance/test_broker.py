"""Every Broker implementation passes the shared conformance checks.

Memory (two brokers on one hub: two nodes in one process) and Redis in
every topology: one server, two shards, a 3-primary cluster.
"""

from __future__ import annotations

import asyncio

import pytest
from msgspec import Raw

from tests.redis_fixtures import engine_on, fresh_prefixes
from tidings.broker.base import Broker
from tidings.broker.memory import MemoryBroker, MemoryBrokerHub
from tidings.broker.redis import RedisBroker
from tidings.engine.redis import RedisSettings
from tidings.protocol.centrifuge.messages import Publication
from tidings.store.base import Position
from tidings.testing.broker import (
    BROKER_CHECKS,
    BrokerCheck,
    BrokerPairFactory,
    RecordingPort,
    check_broker,
)


async def memory_pair() -> tuple[Broker, Broker]:
    hub = MemoryBrokerHub()
    return MemoryBroker(hub, "a"), MemoryBroker(hub, "b")


def redis_pair(settings: RedisSettings) -> BrokerPairFactory:
    """Two brokers with their own connections on one engine, a fresh prefix per pair."""
    prefixes = fresh_prefixes(settings)

    async def make() -> tuple[Broker, Broker]:
        prefix = next(prefixes)
        brokers = [ClosingRedisBroker(engine_on(settings, prefix), node_id=n) for n in "ab"]
        return brokers[0], brokers[1]

    return make


class ClosingRedisBroker(RedisBroker):
    """Closes its engine with itself (each test broker has its own)."""

    async def close(self) -> None:
        await super().close()
        await self.engine.close()


@pytest.mark.parametrize("check", BROKER_CHECKS, ids=lambda c: c.__name__)
async def test_memory(check: BrokerCheck) -> None:
    await check(memory_pair)


@pytest.mark.parametrize("check", BROKER_CHECKS, ids=lambda c: c.__name__)
async def test_redis(engine_settings: RedisSettings, check: BrokerCheck) -> None:
    await check(redis_pair(engine_settings))


async def test_whole_suite_memory() -> None:
    await check_broker(memory_pair)


# --- the suite itself must catch broken brokers ------------------------------------


class DroppingHub(MemoryBrokerHub):
    """Loses every third publication on its way to the nodes."""

    def _deliver(
        self, channel: str, pub: Publication, position: Position, delta: bool = False
    ) -> None:
        if pub.offset % 3 != 0:
            super()._deliver(channel, pub, position, delta)


class ReorderingHub(MemoryBrokerHub):
    """Appends, then delivers after a pause: concurrent publishes overtake each other."""

    async def publish(
        self,
        channel: str,
        pub: Publication,
        size: int,
        ttl: float,
        idempotency_key: str,
        *,
        delta: bool = False,
    ) -> Position:
        position = await self.history.append(channel, pub, size, ttl, idempotency_key)
        await asyncio.sleep(0.001 * (position.offset % 3))
        if pub.offset == position.offset:
            self._deliver(channel, pub, position, delta)
        return position


class NoDedupHub(MemoryBrokerHub):
    """Ignores idempotency keys."""

    async def publish(
        self,
        channel: str,
        pub: Publication,
        size: int,
        ttl: float,
        idempotency_key: str,
        *,
        delta: bool = False,
    ) -> Position:
        return await super().publish(channel, pub, size, ttl, "", delta=delta)


class NoDeltaHub(MemoryBrokerHub):
    """Loses the `delta` flag on the way (as every broker did before it was carried)."""

    def _deliver(
        self, channel: str, pub: Publication, position: Position, delta: bool = False
    ) -> None:
        super()._deliver(channel, pub, position)


class NoRefCountBroker(MemoryBroker):
    """The first unsubscribe stops the channel whatever the count."""

    async def unsubscribe(self, channel: str) -> None:
        self._refs.pop(channel, None)


class EchoBroker(MemoryBroker):
    """Sends control messages to itself too."""

    async def publish_control(self, data: bytes, node_id: str = "") -> None:
        await super().publish_control(data, node_id)
        if self.port is not None:
            self.port.on_control(data)


class NoJoinBroker(MemoryBroker):
    """Never tells anyone about joins."""

    async def publish_join(self, channel: str, info: object) -> None:  # type: ignore[override]
        return None


def pair_of(hub_type: type[MemoryBrokerHub], broker_type: type[MemoryBroker]) -> BrokerPairFactory:
    async def make() -> tuple[Broker, Broker]:
        hub = hub_type()
        return broker_type(hub, "a"), broker_type(hub, "b")

    return make


@pytest.mark.parametrize(
    ("hub_type", "broker_type"),
    [
        (DroppingHub, MemoryBroker),
        (ReorderingHub, MemoryBroker),
        (NoDedupHub, MemoryBroker),
        (NoDeltaHub, MemoryBroker),
        (MemoryBrokerHub, NoRefCountBroker),
        (MemoryBrokerHub, EchoBroker),
        (MemoryBrokerHub, NoJoinBroker),
    ],
    ids=["drops", "reorders", "no-dedup", "no-delta", "no-refcount", "echoes-control", "no-join"],
)
async def test_suite_rejects_broken_broker(
    hub_type: type[MemoryBrokerHub],
    broker_type: type[MemoryBroker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("tidings.testing.broker.ARRIVAL_TIMEOUT", 0.3)
    with pytest.raises(AssertionError):
        await check_broker(pair_of(hub_type, broker_type))


class FailingPort(RecordingPort):
    """A node whose publication handler raises."""

    def on_publication(
        self, channel: str, pub: Publication, position: Position, delta: bool = False
    ) -> None:
        raise RuntimeError("node bug")


@pytest.mark.parametrize("engine", ["memory", "redis"])
async def test_a_failing_node_callback_stops_nothing(
    engine: str, request: pytest.FixtureRequest
) -> None:
    if engine == "memory":
        a, b = await memory_pair()
    else:
        settings = RedisSettings([request.getfixturevalue("redis_server").url], prefix="failing")
        a, b = await redis_pair(settings)()
    port_a, port_b = RecordingPort(), FailingPort()
    await a.start(port_a)
    await b.start(port_b)
    try:
        await a.subscribe("x")
        await b.subscribe("x")
        for _ in range(2):
            await a.publish("x", Publication(data=Raw(b"1")), size=10, ttl=60)
            await b.publish("x", Publication(data=Raw(b"2")), size=10, ttl=60)
        await port_a.wait(lambda: len(port_a.of("x")) == 4, "A to hear all four")
    finally:
        await a.close()
        await b.close()
