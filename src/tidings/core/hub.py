"""The node's indexes: client id -> client, user -> connections, channel -> subscribers."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tidings.core.client import Client


class Hub:
    """Who is connected and who listens where. Pure bookkeeping, no I/O."""

    __slots__ = ("_channels", "_clients", "_users", "num_subs")

    def __init__(self) -> None:
        self._clients: dict[str, Client] = {}
        self._users: dict[str, dict[str, Client]] = {}
        self._channels: dict[str, dict[Client, None]] = {}
        self.num_subs = 0

    # --- connections -------------------------------------------------------------

    def add(self, client: Client) -> None:
        self._clients[client.id] = client
        self._users.setdefault(client.user, {})[client.id] = client

    def remove(self, client: Client) -> bool:
        """Forget `client`; True if it was the user's last connection."""
        if self._clients.pop(client.id, None) is None:
            return False
        conns = self._users.get(client.user)
        if conns is not None:
            conns.pop(client.id, None)
            if not conns:
                del self._users[client.user]
                return True
        return False

    def client(self, client_id: str) -> Client | None:
        return self._clients.get(client_id)

    def clients(self) -> Iterable[Client]:
        return list(self._clients.values())

    def user_clients(self, user: str) -> list[Client]:
        return list(self._users.get(user, {}).values())

    @property
    def num_clients(self) -> int:
        return len(self._clients)

    @property
    def num_users(self) -> int:
        return len(self._users)

    # --- subscriptions -----------------------------------------------------------

    def subscribe(self, channel: str, client: Client) -> bool:
        """Add a subscriber; True if the client was not subscribed yet."""
        subs = self._channels.get(channel)
        if subs is None:
            subs = self._channels[channel] = {}
        elif client in subs:
            return False
        subs[client] = None
        self.num_subs += 1
        return True

    def unsubscribe(self, channel: str, client: Client) -> bool:
        """Remove a subscriber; True if it was subscribed."""
        subs = self._channels.get(channel)
        if subs is None or client not in subs:
            return False
        del subs[client]
        self.num_subs -= 1
        if not subs:
            del self._channels[channel]
        return True

    def subscribers(self, channel: str) -> Iterable[Client]:
        """The channel's local subscribers (a live view: do not mutate while iterating)."""
        return self._channels.get(channel, {}).keys()

    def num_subscribers(self, channel: str) -> int:
        return len(self._channels.get(channel, ()))

    @property
    def num_channels(self) -> int:
        return len(self._channels)

    def channels(self, pattern: str = "") -> dict[str, int]:
        """Channels with subscribers and their counts, optionally filtered by a glob."""
        return {
            name: len(subs)
            for name, subs in self._channels.items()
            if not pattern or fnmatch.fnmatchcase(name, pattern)
        }
