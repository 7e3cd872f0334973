"""The Redis broker when Redis goes away and comes back (real redis-server processes).

Redis killed: publish and subscribe fail fast with EngineUnavailable and the
node is told; Redis restarted on the same port: the broker reconnects,
subscribes again, tells the node which channels may have gaps, and
publications flow again with offsets continuing (AOF, fsync always).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable

import pytest
from msgspec import Raw

from tidings.broker.redis import RedisBroker
from tidings.engine.redis import EngineUnavailable, RedisEngine, RedisSettings
from tidings.protocol.centrifuge.messages import Publication
from tidings.testing.broker import RecordingPort
from tidings.testing.redis import RedisServer, free_port

#: Bounds for "fails fast": generous, this is not a timing assertion.
BOUND = 10.0


def pub(n: int) -> Publication:
    return Publication(data=Raw(f'{{"n":{n}}}'.encode()))


@pytest.fixture
async def node(
    redis_factory: Callable[..., RedisServer],
) -> AsyncIterator[tuple[RedisServer, RedisBroker, RecordingPort]]:
    server = redis_factory(appendonly=True, appendfsync="always")
    engine = RedisEngine(RedisSettings([server.url], connect_timeout=0.5, command_timeout=0.5))
    broker = RedisBroker(engine, node_id="n1", ping_interval=0.2)
    port = RecordingPort()
    await broker.start(port)
    yield server, broker, port
    await broker.close()
    await engine.close()


async def test_start_fails_fast_without_redis() -> None:
    engine = RedisEngine(RedisSettings([f"redis://127.0.0.1:{free_port()}"]))
    broker = RedisBroker(engine)
    with pytest.raises(EngineUnavailable, match=r"Redis at 127\.0\.0\.1:\d+ is unavailable"):
        await asyncio.wait_for(broker.start(RecordingPort()), BOUND)
    await engine.close()


async def test_killed_then_restarted(node: tuple[RedisServer, RedisBroker, RecordingPort]) -> None:
    server, broker, port = node
    await broker.subscribe("ch")
    first = await broker.publish("ch", pub(1), size=10, ttl=60)
    await port.wait(lambda: len(port.of("ch")) == 1, "the first publication")

    server.kill()
    with pytest.raises(EngineUnavailable, match="unavailable"):
        await asyncio.wait_for(broker.publish("ch", pub(2), size=10, ttl=60), BOUND)
    await port.wait(lambda: bool(port.lost), "the node to be told Redis is gone")
    assert "127.0.0.1" in port.lost[0]
    with pytest.raises(EngineUnavailable):
        await asyncio.wait_for(broker.subscribe("other"), BOUND)
    assert broker.subscribers("other") == 0, "a failed subscribe was counted"

    server.start()
    await port.wait(lambda: bool(port.resubscribed), "the broker to resubscribe")
    assert port.resubscribed[-1] == ["ch"]
    second = await broker.publish("ch", pub(3), size=10, ttl=60)
    assert (second.offset, second.epoch) == (first.offset + 1, first.epoch)
    await port.wait(lambda: len(port.of("ch")) == 2, "a publication after the restart")
    assert [p.offset for p in port.of("ch")] == [1, 2]


async def test_frozen_redis_is_detected(
    node: tuple[RedisServer, RedisBroker, RecordingPort],
) -> None:
    """A server that stops answering (SIGSTOP, no reset) is noticed by the ping watchdog."""
    server, broker, port = node
    await broker.subscribe("ch")
    assert server.proc is not None
    server.proc.send_signal(signal.SIGSTOP)
    try:
        with pytest.raises(EngineUnavailable):
            await asyncio.wait_for(broker.publish("ch", pub(1), size=10, ttl=60), BOUND)
        await port.wait(lambda: bool(port.lost), "the watchdog to drop the silent connection")
    finally:
        server.proc.send_signal(signal.SIGCONT)
    await port.wait(lambda: bool(port.resubscribed), "the broker to resubscribe")
    await broker.publish("ch", pub(2), size=10, ttl=60)
    await port.wait(lambda: bool(port.of("ch")), "a publication after the thaw")
