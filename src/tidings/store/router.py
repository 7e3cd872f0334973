"""Sends each channel's history to the memory store or the durable store."""

from __future__ import annotations

from collections.abc import Callable

from tidings.protocol.centrifuge.messages import Publication
from tidings.store.base import Ack, HistoryStore, Position


class StoreRouter(HistoryStore):
    """A HistoryStore that delegates by channel: durable channels to `durable`."""

    def __init__(
        self,
        memory: HistoryStore,
        durable: HistoryStore | None,
        is_durable: Callable[[str], bool],
    ) -> None:
        self.memory = memory
        self.durable_store = durable
        self._is_durable = is_durable

    def _for(self, channel: str) -> HistoryStore:
        if self.durable_store is not None and self._is_durable(channel):
            return self.durable_store
        return self.memory

    async def append(
        self,
        channel: str,
        pub: Publication,
        size: int,
        ttl: float,
        idempotency_key: str = "",
    ) -> Position:
        return await self._for(channel).append(channel, pub, size, ttl, idempotency_key)

    async def read(
        self,
        channel: str,
        since: Position | None = None,
        limit: int = -1,
        reverse: bool = False,
    ) -> tuple[list[Publication], Position]:
        return await self._for(channel).read(channel, since, limit, reverse)

    async def position(self, channel: str) -> Position:
        return await self._for(channel).position(channel)

    async def remove(self, channel: str) -> None:
        await self._for(channel).remove(channel)

    def top(self, channel: str) -> Position | None:
        return self._for(channel).top(channel)

    async def find(self, channel: str, idempotency_key: str) -> int:
        return await self._for(channel).find(channel, idempotency_key)

    async def ack(self, user: str, channel: str, position: Position, client: str) -> Ack:
        return await self._for(channel).ack(user, channel, position, client)

    async def acked(self, user: str, channel: str) -> Ack | None:
        return await self._for(channel).acked(user, channel)

    async def acks(self, channel: str, offset: int, limit: int = 100) -> list[tuple[str, Ack]]:
        return await self._for(channel).acks(channel, offset, limit)

    async def num_streams(self) -> int:
        count = await self.memory.num_streams()
        if self.durable_store is not None:
            count += await self.durable_store.num_streams()
        return count

    async def sweep(self) -> None:
        await self.memory.sweep()
        if self.durable_store is not None:
            await self.durable_store.sweep()

    async def close(self) -> None:
        await self.memory.close()
        if self.durable_store is not None:
            await self.durable_store.close()
