"""What happened to each stored publication: delivered when, and to whom.

Kept in memory for the most recent `capacity` publications of channels with
history (oldest forgotten first; about 200 bytes each). Acknowledgements are
not kept here: they live in the store, which survives restarts.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

#: Client ids remembered per publication.
MAX_CLIENTS = 10


@dataclass(slots=True)
class DeliveryRecord:
    stored_at: float
    delivered_at: float = 0.0
    delivered_to: list[str] = field(default_factory=list)


class DeliveryLog:
    def __init__(self, capacity: int = 100_000) -> None:
        self._capacity = capacity
        self._records: OrderedDict[tuple[str, int], DeliveryRecord] = OrderedDict()

    def stored(self, channel: str, offset: int) -> DeliveryRecord:
        """The record of a stored publication (kept if delivery already made it)."""
        record = self._records.get((channel, offset))
        if record is None:
            record = self._records[(channel, offset)] = DeliveryRecord(time.time())
            while len(self._records) > self._capacity:
                self._records.popitem(last=False)
        return record

    def delivered(self, channel: str, offset: int, clients: list[str]) -> None:
        """Delivered here: the broker may hand a publication over before `publish` returns."""
        if not clients:
            return
        record = self.stored(channel, offset)
        if not record.delivered_at:
            record.delivered_at = time.time()
        room = MAX_CLIENTS - len(record.delivered_to)
        if room > 0:
            record.delivered_to.extend(clients[:room])

    def get(self, channel: str, offset: int) -> DeliveryRecord | None:
        return self._records.get((channel, offset))
