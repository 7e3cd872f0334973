"""The presence interface: per channel, client id -> client info.

Guarantee: after `add` returns, `get` and `stats` include the client until
`remove` for it returns. `stats` counts distinct users, so one user with
several connections counts once in `num_users`.

A store shared by several nodes (`entry_ttl > 0`) also forgets a client
within `entry_ttl` seconds once nobody refreshes it: the store refreshes
the entries its node added (on its own timer, or when `refresh` is
called), so the clients of a node that dies stop counting in bounded time.
Sooner with heartbeats: once the node's silence is noticed, the node
calls `node_gone(its id)`, and the dead node's clients stop counting in
what this store reads (a shared store knows which node added each entry).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from tidings.protocol.centrifuge.messages import ClientInfo


class PresenceStore(ABC):
    #: Seconds an entry lives unless its node refreshes it; 0 means until `remove`.
    entry_ttl: float = 0.0
    #: The node whose clients this store adds (what `node_gone` on other nodes names).
    node_id: str = ""

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

    def node_gone(self, node_id: str) -> None:  # noqa: B027 - optional hook, no-op by default
        """`node_id` stopped sending heartbeats: its entries stop counting now."""

    def node_back(self, node_id: str) -> None:  # noqa: B027 - optional hook, no-op by default
        """`node_id`, reported gone, is heard again: its entries count once it refreshes."""

    async def close(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Stop background work; entries of a shared store then expire on their own."""
