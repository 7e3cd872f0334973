"""The node's indexes: client id -> client, user -> connections, channel -> subscribers."""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tidings.core.client import Client


class Hub:
    """Who is connected and who listens where. Pure bookkeeping, no I/O.

    A user with one connection and a channel with one subscriber (every
    personal channel, usually) map to the client itself; a dict is made
    only for the second one. A small dict is 180-270 bytes, and both are
    one per connection otherwise.
    """

    __slots__ = ("_channels", "_clients", "_users", "num_subs")

    def __init__(self) -> None:
        self._clients: dict[str, Client] = {}
        self._users: dict[str, Client | dict[str, Client]] = {}
        self._channels: dict[str, Client | dict[Client, None]] = {}
        self.num_subs = 0

    # --- connections -------------------------------------------------------------

    def add(self, client: Client) -> None:
        self._clients[client.id] = client
        conns = self._users.get(client.user)
        if conns is None:
            self._users[client.user] = client
        elif isinstance(conns, dict):
            conns[client.id] = client
        elif conns is not client:
            self._users[client.user] = {conns.id: conns, client.id: client}

    def remove(self, client: Client) -> bool:
        """Forget `client`; True if it was the user's last connection."""
        if self._clients.pop(client.id, None) is None:
            return False
        user = client.user
        conns = self._users.get(user)
        if conns is client:
            del self._users[user]
            return True
        if isinstance(conns, dict):
            conns.pop(client.id, None)
            if len(conns) == 1:
                self._users[user] = next(iter(conns.values()))
            elif not conns:
                del self._users[user]
                return True
        return False

    def client(self, client_id: str) -> Client | None:
        return self._clients.get(client_id)

    def clients(self) -> Iterable[Client]:
        return list(self._clients.values())

    def user_clients(self, user: str) -> list[Client]:
        conns = self._users.get(user)
        if conns is None:
            return []
        if isinstance(conns, dict):
            return list(conns.values())
        return [conns]

    def num_user_clients(self, user: str) -> int:
        conns = self._users.get(user)
        if conns is None:
            return 0
        return len(conns) if isinstance(conns, dict) else 1

    @property
    def num_clients(self) -> int:
        return len(self._clients)

    @property
    def num_users(self) -> int:
        """Distinct authenticated users (anonymous connections are not a user)."""
        return len(self._users) - ("" in self._users)

    # --- subscriptions -----------------------------------------------------------

    def subscribe(self, channel: str, client: Client) -> bool:
        """Add a subscriber; True if the client was not subscribed yet."""
        subs = self._channels.get(channel)
        if subs is None:
            self._channels[channel] = client
        elif isinstance(subs, dict):
            if client in subs:
                return False
            subs[client] = None
        elif subs is client:
            return False
        else:
            self._channels[channel] = {subs: None, client: None}
        self.num_subs += 1
        return True

    def unsubscribe(self, channel: str, client: Client) -> bool:
        """Remove a subscriber; True if it was subscribed."""
        subs = self._channels.get(channel)
        if subs is client:
            del self._channels[channel]
        elif isinstance(subs, dict) and client in subs:
            del subs[client]
            if len(subs) == 1:
                self._channels[channel] = next(iter(subs))
        else:
            return False
        self.num_subs -= 1
        return True

    def subscribers(self, channel: str) -> Collection[Client]:
        """The channel's local subscribers (may be a live view: do not mutate while iterating)."""
        subs = self._channels.get(channel)
        if subs is None:
            return ()
        if isinstance(subs, dict):
            return subs.keys()
        return (subs,)

    def num_subscribers(self, channel: str) -> int:
        subs = self._channels.get(channel)
        if subs is None:
            return 0
        return len(subs) if isinstance(subs, dict) else 1

    @property
    def num_channels(self) -> int:
        return len(self._channels)

    def channels(self, pattern: str = "") -> dict[str, int]:
        """Channels with subscribers and their counts, optionally filtered by a glob."""
        return {
            name: len(subs) if isinstance(subs, dict) else 1
            for name, subs in self._channels.items()
            if not pattern or fnmatch.fnmatchcase(name, pattern)
        }
