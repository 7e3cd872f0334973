"""The presence interface: per channel, client id -> client info.

Guarantee: after `add` returns, `get` and `stats` include the client until
`remove` for it returns. `stats` counts distinct users, so one user with
several connections counts once in `num_users`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from tidings.protocol.centrifuge.messages import ClientInfo


class PresenceStore(ABC):
    @abstractmethod
    async def add(self, channel: str, info: ClientInfo) -> None:
        """Record `info.client` as present in `channel`."""

    @abstractmethod
    async def remove(self, channel: str, client_id: str) -> None:
        """Forget the client in `channel` (no error if absent)."""

    @abstractmethod
    async def get(self, channel: str) -> dict[str, ClientInfo]:
        """Everyone present: client id -> info."""

    @abstractmethod
    async def stats(self, channel: str) -> tuple[int, int]:
        """(number of clients, number of distinct users) present."""
