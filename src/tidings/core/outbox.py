"""A connection's bounded outbox: frames waiting for the next flush."""

from __future__ import annotations


class Outbox:
    """Encoded messages for one connection, coalesced into one frame per flush.

    `push` refuses a message that would take the queued bytes over `limit`;
    the caller then disconnects the client as slow (3008), so a client that
    does not read costs at most `limit` bytes here.
    """

    __slots__ = ("_items", "limit", "size")

    def __init__(self, limit: int) -> None:
        self._items: list[bytes] = []
        self.size = 0
        self.limit = limit

    def __len__(self) -> int:
        return len(self._items)

    def push(self, data: bytes) -> bool:
        """Queue `data`; False (and nothing queued) when it would exceed the limit."""
        size = self.size + len(data)
        if size > self.limit:
            return False
        self._items.append(data)
        self.size = size
        return True

    def force(self, data: bytes) -> None:
        """Queue `data` whatever the limit (replies: bounded by what was asked for)."""
        self._items.append(data)
        self.size += len(data)

    def drain(self) -> list[bytes]:
        """Everything queued, oldest first, leaving the outbox empty."""
        items = self._items
        self._items = []
        self.size = 0
        return items
