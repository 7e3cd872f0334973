"""The user register interface: user -> their connections, each on some node.

It answers "is this user online, and where?" for the whole cluster, so
that `user_status`, `user_connections`, `disconnect`, `unsubscribe`,
`subscribe` and `refresh` can reach a user connected to any node (the
node sends a control message to the nodes it finds here).

Guarantee: after `add` returns, `connections` lists the connection until
`remove` for it returns. A register shared by several nodes
(`entry_ttl > 0`) also forgets a connection within `entry_ttl` seconds
once its node stops refreshing it (the node died), and at once when told
so by `node_gone` (the heartbeats of that node stopped).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UserConnection:
    """One connection of a user: its client id, the node holding it, its info (JSON)."""

    user: str
    client: str
    node: str
    info: bytes = b""


class UserRegister(ABC):
    #: Seconds an entry lives unless its node refreshes it; 0 means until `remove`.
    entry_ttl: float = 0.0

    @abstractmethod
    async def add(self, connection: UserConnection) -> None:
        """Record the connection (again: its node and info are updated)."""

    @abstractmethod
    async def remove(self, user: str, client: str) -> None:
        """Forget one connection (no error if unknown)."""

    @abstractmethod
    async def connections(self, user: str) -> list[UserConnection]:
        """Every live connection of `user`, on every node (a new list)."""

    async def refresh(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Extend the life of every connection this instance added."""

    def node_gone(self, node_id: str) -> None:  # noqa: B027 - optional hook, no-op by default
        """`node_id` stopped sending heartbeats: its entries stop counting now."""

    def node_back(self, node_id: str) -> None:  # noqa: B027 - optional hook, no-op by default
        """`node_id`, reported gone, is heard again: its entries count once it refreshes."""

    async def close(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Stop background work; entries of a shared register then expire on their own."""
