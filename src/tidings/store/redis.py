"""History streams kept in Redis, shared by every node of a cluster.

The layout and scripts live in `tidings.store.redis_streams` (the broker's
publish runs the same append script). Whether what Redis acknowledges
survives a Redis restart depends on Redis' own persistence: see
`durability()`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tidings.protocol.centrifuge.messages import Publication
from tidings.store.base import Ack, HistoryStore, Position
from tidings.store.redis_streams import RedisStreams


@dataclass(frozen=True, slots=True)
class Durability:
    """What the Redis servers of an engine say about keeping acknowledged writes."""

    #: `appendonly` and `appendfsync` of each primary, in `engine.primaries()` order.
    settings: tuple[tuple[str, str], ...]

    @property
    def safe(self) -> bool:
        """Whether every primary logs each write before answering (AOF, fsync always)."""
        return all(aof == "yes" and fsync == "always" for aof, fsync in self.settings)

    @property
    def problem(self) -> str:
        """Why durable channels are not safe here ("" when they are), naming the setting."""
        for aof, fsync in self.settings:
            if aof != "yes":
                return f"Redis appendonly is {aof!r}: a restart of Redis loses publications"
            if fsync != "always":
                return (
                    f"Redis appendfsync is {fsync!r}: a crash of Redis loses the last"
                    " acknowledged publications (durable channels need 'always')"
                )
        return ""


class RedisHistoryStore(HistoryStore):
    """A `HistoryStore` on Redis: streams live as long as Redis keeps them."""

    durable = True

    def __init__(self, streams: RedisStreams, *, owns_engine: bool = False) -> None:
        self.streams = streams
        self._owns_engine = owns_engine

    async def durability(self) -> Durability:
        """Read `appendonly` / `appendfsync` from every primary (CONFIG GET)."""
        found = []
        for config in await self.streams.engine.config("append*"):
            found.append((config.get("appendonly", ""), config.get("appendfsync", "")))
        return Durability(tuple(found))

    async def append(
        self,
        channel: str,
        pub: Publication,
        size: int,
        ttl: float,
        idempotency_key: str = "",
    ) -> Position:
        return await self.streams.append(channel, pub, size, ttl, idempotency_key)

    async def read(
        self,
        channel: str,
        since: Position | None = None,
        limit: int = -1,
        reverse: bool = False,
    ) -> tuple[list[Publication], Position]:
        return await self.streams.read(channel, since, limit, reverse)

    async def position(self, channel: str) -> Position:
        _, top = await self.streams.read(channel, None, 0)
        return top

    async def remove(self, channel: str) -> None:
        await self.streams.remove(channel)

    def top(self, channel: str) -> Position | None:
        return self.streams.top(channel)

    async def find(self, channel: str, idempotency_key: str) -> int:
        return await self.streams.find(channel, idempotency_key)

    async def num_streams(self) -> int:
        return await self.streams.num_streams()

    async def ack(self, user: str, channel: str, position: Position, client: str) -> Ack:
        return await self.streams.ack(user, channel, position, client)

    async def acked(self, user: str, channel: str) -> Ack | None:
        return await self.streams.acked(user, channel)

    async def acks(self, channel: str, offset: int, limit: int = 100) -> list[tuple[str, Ack]]:
        return await self.streams.acks(channel, offset, limit)

    async def close(self) -> None:
        if self._owns_engine:
            await self.streams.engine.close()
