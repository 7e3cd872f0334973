"""The user register in Redis, shared by every node; a dead node's entries expire."""

from __future__ import annotations

import time
from collections.abc import Callable

from tidings.engine.redis import RedisEngine
from tidings.presence.redis_entries import ExpiringEntries, ExpiringEntriesStore
from tidings.register.base import UserConnection, UserRegister

#: Seconds a connection outlives the last refresh of its node.
REGISTER_TTL = 60.0


class RedisUserRegister(ExpiringEntriesStore, UserRegister):
    """Per user: client id -> (info, node), refreshed by the node every `entry_ttl / 3`."""

    def __init__(
        self,
        engine: RedisEngine,
        *,
        entry_ttl: float = REGISTER_TTL,
        clock: Callable[[], float] = time.time,
        owns_engine: bool = False,
    ) -> None:
        self.entry_ttl = entry_ttl
        self.entries = ExpiringEntries(engine, "user", entry_ttl, clock)
        self._owns_engine = owns_engine

    async def add(self, connection: UserConnection) -> None:
        c = connection
        await self.entries.add(c.user, c.client, c.info, c.node, c.node)

    async def remove(self, user: str, client: str) -> None:
        await self.entries.remove(user, client)

    async def connections(self, user: str) -> list[UserConnection]:
        return [
            UserConnection(user, client, node, info)
            for client, info, node in await self.entries.get(user)
        ]
