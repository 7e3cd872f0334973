"""Presence kept in process memory."""

from __future__ import annotations

from tidings.presence.base import PresenceStore
from tidings.protocol.centrifuge.messages import ClientInfo


class MemoryPresenceStore(PresenceStore):
    def __init__(self) -> None:
        self._channels: dict[str, dict[str, ClientInfo]] = {}

    async def add(self, channel: str, info: ClientInfo) -> None:
        self._channels.setdefault(channel, {})[info.client] = info

    async def remove(self, channel: str, client_id: str) -> None:
        clients = self._channels.get(channel)
        if clients is not None:
            clients.pop(client_id, None)
            if not clients:
                del self._channels[channel]

    async def get(self, channel: str) -> dict[str, ClientInfo]:
        return dict(self._channels.get(channel, {}))

    async def stats(self, channel: str) -> tuple[int, int]:
        clients = self._channels.get(channel, {})
        return len(clients), len({info.user for info in clients.values()})
