"""Who serves which topic and channel: lookupd's registration table.

Keys are `Registration(category, key, subkey)` with category `client` (one per
identified queue node), `topic` (key = topic) or `channel` (key = topic, subkey =
channel). Each key maps the node ids (the TCP peer address) registered under it to a
`Producer`. A key stays when its last producer leaves (nsqlookupd behaves the same:
`/topics` keeps listing a topic until it is deleted), except ephemeral ones.

`Node` is shared by all registrations of one connection, so a PING refreshes them
all; a tombstone belongs to one (topic, node) pair only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tidings.protocol.nsq.lookup import PeerInfo

CLIENT = "client"
TOPIC = "topic"
CHANNEL = "channel"
ANY = "*"


@dataclass(frozen=True, slots=True)
class Registration:
    category: str
    key: str = ""
    subkey: str = ""

    def matches(self, category: str, key: str, subkey: str) -> bool:
        return (
            self.category == category
            and (key in (ANY, self.key))
            and (subkey in (ANY, self.subkey))
        )


@dataclass(slots=True)
class Node:
    """A queue node identified on one TCP connection."""

    id: str  # the connection's remote address, unique while it is connected
    remote_address: str
    info: PeerInfo
    last_update: float

    def http_address(self) -> str:
        return f"{self.info.broadcast_address}:{self.info.http_port}"


@dataclass(slots=True)
class Producer:
    """One node under one registration."""

    node: Node
    tombstoned_at: float | None = field(default=None)

    def is_tombstoned(self, now: float, lifetime: float) -> bool:
        return self.tombstoned_at is not None and now - self.tombstoned_at < lifetime


class RegistrationTable:
    """The registrations, with nsqlookupd's lookup rules (`*` matches any key/subkey)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._entries: dict[Registration, dict[str, Producer]] = {}

    def add_registration(self, registration: Registration) -> None:
        self._entries.setdefault(registration, {})

    def add_producer(self, registration: Registration, node: Node) -> bool:
        """Register `node` under `registration`; False if it already was."""
        producers = self._entries.setdefault(registration, {})
        if node.id in producers:
            return False
        producers[node.id] = Producer(node)
        return True

    def remove_producer(self, registration: Registration, node_id: str) -> tuple[bool, int]:
        """Remove a node from a registration: (was it there, how many are left)."""
        producers = self._entries.get(registration)
        if producers is None:
            return False, 0
        removed = producers.pop(node_id, None) is not None
        return removed, len(producers)

    def remove_registration(self, registration: Registration) -> None:
        self._entries.pop(registration, None)

    def find_registrations(self, category: str, key: str, subkey: str) -> list[Registration]:
        if ANY not in (key, subkey):
            exact = Registration(category, key, subkey)
            return [exact] if exact in self._entries else []
        return [r for r in self._entries if r.matches(category, key, subkey)]

    def find_producers(self, category: str, key: str, subkey: str) -> list[Producer]:
        """Producers under the matching registrations, each node once."""
        seen: dict[str, Producer] = {}
        for registration in self.find_registrations(category, key, subkey):
            for node_id, producer in self._entries[registration].items():
                seen.setdefault(node_id, producer)
        return list(seen.values())

    def entries(self) -> list[tuple[Registration, list[Producer]]]:
        """Every registration with its producers (for `/debug`)."""
        return [(key, list(producers.values())) for key, producers in self._entries.items()]

    def producer(self, registration: Registration, node_id: str) -> Producer | None:
        return self._entries.get(registration, {}).get(node_id)

    def registrations_of(self, node_id: str) -> list[Registration]:
        return [r for r, producers in self._entries.items() if node_id in producers]

    def tombstone(self, topic: str, node_http_address: str) -> None:
        """Hide a node from `/lookup` of one topic for the tombstone lifetime."""
        now = self._clock()
        for producer in self.find_producers(TOPIC, topic, ""):
            if producer.node.http_address() == node_http_address:
                producer.tombstoned_at = now

    def active(
        self, producers: Iterable[Producer], inactive_timeout: float, tombstone_lifetime: float
    ) -> list[Producer]:
        """Producers heard from within `inactive_timeout` and not tombstoned."""
        now = self._clock()
        return [
            p
            for p in producers
            if now - p.node.last_update <= inactive_timeout
            and not p.is_tombstoned(now, tombstone_lifetime)
        ]

    def touch(self, node: Node) -> None:
        node.last_update = self._clock()
