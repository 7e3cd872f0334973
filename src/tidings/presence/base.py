"""The presence interface: per channel, client id -> client info.

Guarantee: after `add` returns, `get` and `stats` include the client until
`remove` for it returns. `stats` counts distinct users, so one user with
several connections counts once in `num_users`.

A store shared by several nodes (`entry_ttl > 0`) also forgets a client
within `entry_ttl` seconds once nobody refreshes it: the store refreshes
the entries its node added (on its own timer, or when `refresh` is
called), so the clients of a node that dies stop counting in bounded time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from tidings.protocol.centrifuge.messages import ClientInfo


class PresenceStore(ABC):
    #: Seconds an entry lives unless its node refreshes it; 0 means until `remove`.
    entry_ttl: float = 0.0

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

    async def refresh(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Extend the life of every entry this store instance added (`entry_ttl` ahead)."""

    async def close(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Stop background work; entries of a shared store then expire on their own."""
