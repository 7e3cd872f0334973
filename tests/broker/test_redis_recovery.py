"""Redis restarted mid-stream: with AOF (fsync always), retries with idempotency keys
and recovery from history after `on_resubscribed`, a subscribed node ends up with
every acknowledged publication, once, in order (lost = 0).

This is the contract the node builds on: the broker says which channels may
have gaps; the stream's offsets tell what is missing; history has it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from msgspec import Raw

from tidings.broker.redis import RedisBroker
from tidings.engine.redis import RedisEngine, RedisSettings
from tidings.protocol.centrifuge.messages import Publication
from tidings.store.base import HistoryStore, Position, StoreWriteError
from tidings.testing.broker import RecordingPort
from tidings.testing.redis import RedisServer

TOTAL = 120
KILL_AT = 40


class RecoveringPort(RecordingPort):
    """Keeps one channel gap-free: buffers live publications while it reads history."""

    def __init__(self, history: HistoryStore, channel: str) -> None:
        super().__init__()
        self.history = history
        self.channel = channel
        self.received: list[int] = []
        self.position = Position(0, "")
        self._buffer: list[Publication] | None = None
        self.recoveries = 0

    def _apply(self, pub: Publication) -> None:
        if pub.offset == self.position.offset + 1:
            self.received.append(pub.offset)
            self.position = Position(pub.offset, self.position.epoch)
        elif pub.offset > self.position.offset + 1:
            self._recover()  # a gap: fetch what is missing
            assert self._buffer is not None
            self._buffer.append(pub)

    def on_publication(
        self, channel: str, pub: Publication, position: Position, delta: bool = False
    ) -> None:
        if not self.position.epoch:
            self.position = Position(self.position.offset, position.epoch)
        if self._buffer is not None:
            self._buffer.append(pub)
        else:
            self._apply(pub)
        self._note()

    def on_resubscribed(self, channels: list[str]) -> None:
        super().on_resubscribed(channels)
        if self.channel in channels:
            self._recover()

    def _recover(self) -> None:
        if self._buffer is None:
            self._buffer = []
            asyncio.get_running_loop().create_task(self._read_history())

    async def _read_history(self) -> None:
        self.recoveries += 1
        while True:
            try:
                pubs, _ = await self.history.read(self.channel, self.position)
                break
            except StoreWriteError:
                await asyncio.sleep(0.05)
        for pub in pubs:
            self._apply(pub)
        buffered, self._buffer = self._buffer or [], None
        for pub in buffered:
            if pub.offset > self.position.offset:
                self._apply(pub)
        self._note()


async def test_restart_mid_stream_loses_nothing(
    redis_factory: Callable[..., RedisServer],
) -> None:
    server = redis_factory(appendonly=True, appendfsync="always")
    settings = RedisSettings([server.url], connect_timeout=0.5, command_timeout=0.5)
    publisher = RedisBroker(RedisEngine(settings), node_id="publisher", ping_interval=0.2)
    subscriber = RedisBroker(RedisEngine(settings), node_id="subscriber", ping_interval=0.2)
    port = RecoveringPort(subscriber.history, "stream")
    await publisher.start(RecordingPort())
    await subscriber.start(port)
    acknowledged: list[int] = []
    failures = 0
    halfway = asyncio.Event()

    async def publish_all() -> None:
        nonlocal failures
        for n in range(TOTAL):
            while True:  # what a careful back end does: retry with the same key
                try:
                    position = await publisher.publish(
                        "stream",
                        Publication(data=Raw(f"{n}".encode())),
                        size=1000,
                        ttl=600,
                        idempotency_key=f"k{n}",
                    )
                except StoreWriteError:
                    failures += 1
                    await asyncio.sleep(0.05)
                    continue
                acknowledged.append(position.offset)
                if len(acknowledged) == KILL_AT:
                    halfway.set()
                break

    async def restart_redis() -> None:
        await halfway.wait()
        server.kill()
        await asyncio.sleep(0.3)
        await asyncio.to_thread(server.start)

    try:
        await subscriber.subscribe("stream")
        await asyncio.gather(publish_all(), restart_redis())
        await port.wait(
            lambda: len(port.received) >= TOTAL and port._buffer is None,
            "the subscriber to have every acknowledged publication",
        )
    finally:
        await publisher.close()
        await subscriber.close()
        await publisher.engine.close()
        await subscriber.engine.close()

    assert failures > 0, "Redis was never seen down: the test did not test anything"
    assert port.lost and port.resubscribed, "the subscriber was not told of the outage"
    assert sorted(acknowledged) == list(range(1, TOTAL + 1)), "offsets skipped or repeated"
    assert port.received == list(range(1, TOTAL + 1)), "lost, repeated or reordered"
