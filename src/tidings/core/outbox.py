"""A connection's bounded outbox: frames waiting for the next flush."""

from __future__ import annotations

import msgspec

from tidings.protocol.centrifuge.messages import Publication

#: Bytes kept free in the outbox for the envelope of a reply carrying a recovery.
REPLY_MARGIN = 1024

_json_encoder = msgspec.json.Encoder()


def encoded_size(pubs: list[Publication]) -> int:
    """Bytes `pubs` take in a reply: their JSON form (protobuf is never larger) plus slack."""
    return len(_json_encoder.encode(pubs)) + 32 * len(pubs) if pubs else 0


class Outbox:
    """Encoded messages for one connection, coalesced into one frame per flush.

    `push` refuses a message that would take the queued bytes over `limit`;
    the caller then disconnects the client as slow (3008), so a client that
    does not read costs at most `limit` bytes here. Pushes and command replies
    alike go through `push`: a client cannot grow this by asking instead of
    being sent.
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

    def drain(self) -> list[bytes]:
        """Everything queued, oldest first, leaving the outbox empty."""
        items = self._items
        self._items = []
        self.size = 0
        return items
