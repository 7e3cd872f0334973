"""Presence in Redis, seen by every node: entries expire unless their node refreshes them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from tidings.engine.redis import RedisEngine
from tidings.engine.redis_codec import decode_info, encode_info
from tidings.presence.base import PresenceStore
from tidings.presence.redis_entries import ExpiringEntries, ExpiringEntriesStore
from tidings.protocol.centrifuge.messages import ClientInfo

#: Seconds an entry outlives the last refresh of its node (Centrifugo's presence_ttl).
PRESENCE_TTL = 60.0


class RedisPresenceStore(ExpiringEntriesStore, PresenceStore):
    """Per channel: client id -> info, with users counted across nodes.

    The node that added a client refreshes it every `entry_ttl / 3`
    seconds; a node that dies stops counting within `entry_ttl`.
    """

    def __init__(
        self,
        engine: RedisEngine,
        *,
        entry_ttl: float = PRESENCE_TTL,
        clock: Callable[[], float] = time.time,
        owns_engine: bool = False,
        node_id: str = "",
    ) -> None:
        self.entry_ttl = entry_ttl
        #: The node whose clients this store adds (`node_gone` on other nodes names it).
        self.node_id = node_id or str(uuid.uuid4())
        self.entries = ExpiringEntries(engine, "presence", entry_ttl, clock)
        self._owns_engine = owns_engine

    async def add(self, channel: str, info: ClientInfo) -> None:
        await self.entries.add(channel, info.client, encode_info(info), info.user, self.node_id)

    async def remove(self, channel: str, client_id: str) -> None:
        await self.entries.remove(channel, client_id)

    async def get(self, channel: str) -> dict[str, ClientInfo]:
        return {client: decode_info(value) for client, value, _ in await self.entries.get(channel)}

    async def stats(self, channel: str) -> tuple[int, int]:
        return await self.entries.count(channel)
