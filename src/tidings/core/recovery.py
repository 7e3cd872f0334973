"""Where a subscription starts: its position and, on recovery, what it missed.

The missed publications travel in the subscribe (or connect) reply, which
counts towards the client's outbox bound like everything else sent to it. A
recovery is therefore bounded in bytes: larger than the room given, it is not
performed (`recovered: false`, positioned at the top) and the client reads
what it missed with paged `history` — or, for an inbox replay, the oldest
publications are left out as if trimmed (the client sees the gap by offsets).
"""

from __future__ import annotations

from tidings.core.outbox import encoded_size
from tidings.protocol.centrifuge.messages import Publication, SubscribeResult
from tidings.store.base import HistoryStore, Position, UnrecoverablePosition


class Recovery:
    """Fills the position and recovered publications of subscribe results."""

    def __init__(self, history: HistoryStore, counters: dict[str, int]) -> None:
        self.history = history
        self._counters = counters

    async def fill(
        self,
        name: str,
        result: SubscribeResult,
        since: Position | None,
        *,
        budget: int,
        newest_that_fit: bool = False,
    ) -> None:
        """Position `result` at the top; with `since`, recover what came after it.

        Recovered publications take at most `budget` bytes (see the module docs).
        """
        result.recoverable = result.positioned = True
        if since is not None:
            result.was_recovering = True
            try:
                pubs, top = await self._read_to_top(name, since)
            except UnrecoverablePosition:
                top = await self._settled_top(name)
            else:
                if newest_that_fit:
                    pubs = _newest_within(pubs, budget)
                if encoded_size(pubs) > budget:
                    self._counters["unrecovered_reply_size"] += 1
                    top = await self._settled_top(name)
                else:
                    result.recovered = True
                    result.publications = pubs or None
        else:
            top = await self._settled_top(name)
        result.epoch, result.offset = top.epoch, top.offset

    async def _read_to_top(self, name: str, since: Position) -> tuple[list[Publication], Position]:
        """Everything after `since`, re-reading while publications land meanwhile.

        On return no await separates the read from the caller adding the client
        to the channel, and the store's known top equals what was read, so no
        publication can fall between recovery and live delivery.
        """
        pubs, top = await self.history.read(name, since)
        for _ in range(10):
            latest = self.history.top(name)
            if latest is None or latest.epoch != top.epoch or latest.offset <= top.offset:
                break
            more, top = await self.history.read(name, top)
            pubs.extend(more)
        return pubs, top

    async def _settled_top(self, name: str) -> Position:
        top = await self.history.position(name)
        latest = self.history.top(name)
        if latest is not None and latest.epoch == top.epoch and latest.offset > top.offset:
            return latest
        return top


def _newest_within(pubs: list[Publication], budget: int) -> list[Publication]:
    """The newest of `pubs` (in order) whose `encoded_size` stays within `budget`."""
    total = 0
    first = len(pubs)
    while first > 0:
        total += encoded_size(pubs[first - 1 : first])
        if total > budget:
            break
        first -= 1
    return pubs[first:]
