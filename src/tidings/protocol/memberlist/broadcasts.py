"""The gossip queue: membership news piggybacked on packets a bounded number of times.

Like memberlist's `TransmitLimitedQueue`: news about a member replaces older news
about the same member; the least-sent, newest items go first; an item is dropped
after `retransmit_mult * ceil(log10(n + 1))` sends.
"""

from __future__ import annotations

from dataclasses import dataclass

from tidings.protocol.memberlist.messages import Alive, Dead, Suspect, User, encode_message

Broadcast = Alive | Suspect | Dead | User


@dataclass(slots=True)
class QueuedBroadcast:
    key: str  # the member it is about ('' for user messages: never replaced)
    message: Broadcast
    size: int
    order: int
    transmits: int = 0


class BroadcastQueue:
    __slots__ = ("_items", "_order")

    def __init__(self) -> None:
        self._items: list[QueuedBroadcast] = []
        self._order = 0

    def __len__(self) -> int:
        return len(self._items)

    def queue(self, key: str, message: Broadcast) -> None:
        if key:
            self._items = [item for item in self._items if item.key != key]
        self._order += 1
        self._items.append(QueuedBroadcast(key, message, len(encode_message(message)), self._order))

    def pending(self, key: str) -> bool:
        """Whether news about `key` is still waiting to be sent (enough times)."""
        return any(item.key == key for item in self._items)

    def take(self, overhead: int, limit: int, retransmit_limit: int) -> list[Broadcast]:
        """Broadcasts that fit in `limit` bytes, `overhead` bytes each on top of their size."""
        if not self._items:
            return []
        self._items.sort(key=lambda item: (item.transmits, -item.order))
        taken: list[Broadcast] = []
        used = 0
        kept: list[QueuedBroadcast] = []
        for item in self._items:
            if used + overhead + item.size > limit:
                kept.append(item)
                continue
            used += overhead + item.size
            taken.append(item.message)
            item.transmits += 1
            if item.transmits < retransmit_limit:
                kept.append(item)
        self._items = kept
        return taken
