"""History streams kept in process memory (lost on restart: a new epoch)."""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable

from tidings.protocol.centrifuge.messages import Publication
from tidings.store.base import HistoryStore, Position, UnrecoverablePosition


class _Stream:
    __slots__ = ("epoch", "expire_at", "items", "offset", "ttl")

    def __init__(self, epoch: str) -> None:
        self.epoch = epoch
        self.offset = 0
        self.ttl = 0.0
        # (time added, publication)
        self.items: deque[tuple[float, Publication]] = deque()
        self.expire_at = 0.0

    def trim(self, now: float) -> None:
        if self.ttl <= 0:
            return
        cutoff = now - self.ttl
        items = self.items
        while items and items[0][0] <= cutoff:
            items.popleft()


class MemoryHistoryStore(HistoryStore):
    """Bounded per-channel deques of publications.

    Memory is bounded by the trim limits: at most `size` publications per
    channel, and streams idle past their ttl are dropped by `sweep`.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._streams: dict[str, _Stream] = {}
        self._clock = clock

    def _stream(self, channel: str) -> _Stream:
        stream = self._streams.get(channel)
        if stream is None:
            stream = self._streams[channel] = _Stream(secrets.token_hex(4))
        return stream

    async def append(self, channel: str, pub: Publication, size: int, ttl: float) -> Position:
        now = self._clock()
        stream = self._stream(channel)
        stream.offset += 1
        pub.offset = stream.offset
        stream.ttl = ttl
        stream.expire_at = now + ttl
        stream.items.append((now, pub))
        while len(stream.items) > size:
            stream.items.popleft()
        stream.trim(now)
        return Position(stream.offset, stream.epoch)

    async def read(
        self,
        channel: str,
        since: Position | None = None,
        limit: int = -1,
        reverse: bool = False,
    ) -> tuple[list[Publication], Position]:
        stream = self._stream(channel)
        stream.trim(self._clock())
        top = Position(stream.offset, stream.epoch)
        pubs = [pub for _, pub in stream.items]
        if since is not None:
            if since.epoch and since.epoch != stream.epoch:
                raise UnrecoverablePosition(f"epoch {since.epoch!r} is not {stream.epoch!r}")
            if since.offset > stream.offset:
                raise UnrecoverablePosition(f"offset {since.offset} is beyond {stream.offset}")
            first = pubs[0].offset if pubs else stream.offset + 1
            if since.offset + 1 < first:
                raise UnrecoverablePosition(f"publications after {since.offset} were trimmed")
            pubs = pubs[since.offset + 1 - first :] if pubs else []
        if reverse:
            pubs.reverse()
        if limit >= 0:
            pubs = pubs[:limit]
        return pubs, top

    async def position(self, channel: str) -> Position:
        stream = self._stream(channel)
        return Position(stream.offset, stream.epoch)

    async def remove(self, channel: str) -> None:
        stream = self._streams.get(channel)
        if stream is not None:
            stream.items.clear()

    async def sweep(self) -> None:
        now = self._clock()
        for name, stream in list(self._streams.items()):
            stream.trim(now)
            if not stream.items and stream.expire_at and stream.expire_at < now:
                del self._streams[name]
