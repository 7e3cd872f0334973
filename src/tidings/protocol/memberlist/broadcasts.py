"""The gossip queue: membership news piggybacked on packets a bounded number of times.

Like memberlist's `TransmitLimitedQueue`: news about a member replaces older news
about the same member; the least-sent, newest items go first; an item is dropped
after `retransmit_mult * ceil(log10(n + 1))` sends. Items live in buckets by
send count, so filling a packet touches only what goes into it.
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
    __slots__ = ("_buckets", "_by_key", "_min_size", "_order")

    def __init__(self) -> None:
        # transmits -> {order: item}, oldest first (dicts keep insertion order)
        self._buckets: dict[int, dict[int, QueuedBroadcast]] = {}
        self._by_key: dict[str, QueuedBroadcast] = {}
        self._order = 0
        self._min_size = 1 << 30

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._buckets.values())

    def pending(self, key: str) -> bool:
        """Whether news about `key` is still waiting to be sent (enough times)."""
        return key in self._by_key

    def queue(self, key: str, message: Broadcast) -> None:
        if key and (old := self._by_key.pop(key, None)) is not None:
            self._discard(old)
        self._order += 1
        item = QueuedBroadcast(key, message, len(encode_message(message)), self._order)
        self._min_size = min(self._min_size, item.size)
        self._buckets.setdefault(0, {})[item.order] = item
        if key:
            self._by_key[key] = item

    def take(self, overhead: int, limit: int, retransmit_limit: int) -> list[Broadcast]:
        """Broadcasts that fit in `limit` bytes, `overhead` bytes each on top of their size."""
        if not self._buckets:
            return []
        taken: list[QueuedBroadcast] = []
        room = limit
        for transmits in sorted(self._buckets):
            for item in reversed(self._buckets[transmits].values()):
                if room < overhead + self._min_size:
                    break
                if overhead + item.size <= room:
                    room -= overhead + item.size
                    taken.append(item)
        for item in taken:
            self._discard(item)
            item.transmits += 1
            if item.transmits < retransmit_limit:
                self._buckets.setdefault(item.transmits, {})[item.order] = item
                if item.key:
                    self._by_key[item.key] = item
        return [item.message for item in taken]

    def _discard(self, item: QueuedBroadcast) -> None:
        bucket = self._buckets[item.transmits]
        del bucket[item.order]
        if not bucket:
            del self._buckets[item.transmits]
        if item.key and self._by_key.get(item.key) is item:
            del self._by_key[item.key]
