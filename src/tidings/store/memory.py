"""History streams kept in process memory (lost on restart: a new epoch)."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from tidings.protocol.centrifuge.messages import Publication
from tidings.store.base import (
    Ack,
    HistoryStore,
    Position,
    StreamLimitReached,
    UnrecoverablePosition,
    check_offset,
    check_read,
)

#: Acknowledged positions kept (least recently acknowledged forgotten first).
MAX_ACKS = 1_000_000

#: How long a stream's offset and epoch outlive its last publication.
META_TTL = 86400.0

#: Streams kept by default (`history_max_streams`): appends creating more are refused.
MAX_STREAMS = 1_000_000


class _Stream:
    __slots__ = ("epoch", "expire_at", "items", "keys", "offset", "ttl")

    def __init__(self, epoch: str) -> None:
        self.epoch = epoch
        self.offset = 0
        self.ttl = 0.0
        # (time added, publication)
        self.items: deque[tuple[float, Publication]] = deque()
        self.expire_at = 0.0
        # idempotency key -> offset, oldest first, no more keys than publications kept
        self.keys: dict[str, int] = {}

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
    channel, streams idle past their ttl are dropped by `sweep`, and at most
    `max_streams` streams exist (0: no bound). Only appends create streams.

    A never-published channel has no stream but a stable epoch, derived from
    the store's secret, the channel and the current *era* (META_TTL seconds of
    the clock): the first append takes that epoch. A stream is forgotten only
    after META_TTL idle seconds, so a stream created again is in a later era
    and gets another epoch: positions in the forgotten stream stay unrecoverable.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_streams: int = MAX_STREAMS
    ) -> None:
        self._streams: dict[str, _Stream] = {}
        self._clock = clock
        self._acks: OrderedDict[tuple[str, str], Ack] = OrderedDict()
        self._secret = secrets.token_bytes(16)
        self.max_streams = max_streams

    def _epoch(self, channel: str, now: float) -> str:
        era = int(now // META_TTL).to_bytes(8, "big", signed=True)
        name = channel.encode(errors="surrogatepass")
        return hashlib.blake2b(era + name, key=self._secret, digest_size=4).hexdigest()

    def _new_stream(self, channel: str, now: float) -> _Stream:
        limit = self.max_streams
        if limit and len(self._streams) >= limit:
            # `sweep` (every 30 s on a node) makes room again as idle streams expire.
            raise StreamLimitReached(
                f"history_max_streams ({limit}) reached: no new stream for {channel!r}"
            )
        stream = self._streams[channel] = _Stream(self._epoch(channel, now))
        return stream

    async def append(
        self,
        channel: str,
        pub: Publication,
        size: int,
        ttl: float,
        idempotency_key: str = "",
    ) -> Position:
        check_offset("size", size)
        now = self._clock()
        stream = self._streams.get(channel) or self._new_stream(channel, now)
        if idempotency_key:
            earlier = stream.keys.get(idempotency_key)
            if earlier is not None:
                return Position(earlier, stream.epoch)
            stream.keys[idempotency_key] = stream.offset + 1
            while len(stream.keys) > max(size, 1):
                del stream.keys[next(iter(stream.keys))]
        stream.offset += 1
        pub.offset = stream.offset
        stream.ttl = ttl
        stream.expire_at = now + max(ttl, META_TTL)
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
        check_read(since, limit)
        now = self._clock()
        stream = self._streams.get(channel)
        if stream is None:
            top = Position(0, self._epoch(channel, now))
            pubs: list[Publication] = []
        else:
            stream.trim(now)
            top = Position(stream.offset, stream.epoch)
            pubs = [pub for _, pub in stream.items]
        if since is not None:
            if since.epoch and since.epoch != top.epoch:
                raise UnrecoverablePosition(f"epoch {since.epoch!r} is not {top.epoch!r}")
            if since.offset > top.offset:
                raise UnrecoverablePosition(f"offset {since.offset} is beyond {top.offset}")
            first = pubs[0].offset if pubs else top.offset + 1
            if since.offset + 1 < first:
                raise UnrecoverablePosition(f"publications after {since.offset} were trimmed")
            pubs = pubs[since.offset + 1 - first :] if pubs else []
        if reverse:
            pubs.reverse()
        if limit >= 0:
            pubs = pubs[:limit]
        return pubs, top

    async def position(self, channel: str) -> Position:
        stream = self._streams.get(channel)
        if stream is None:
            return Position(0, self._epoch(channel, self._clock()))
        return Position(stream.offset, stream.epoch)

    async def remove(self, channel: str) -> None:
        stream = self._streams.get(channel)
        if stream is not None:
            stream.items.clear()
            stream.keys.clear()

    def top(self, channel: str) -> Position | None:
        stream = self._streams.get(channel)
        return Position(stream.offset, stream.epoch) if stream is not None else None

    async def find(self, channel: str, idempotency_key: str) -> int:
        stream = self._streams.get(channel)
        return stream.keys.get(idempotency_key, 0) if stream is not None else 0

    async def ack(self, user: str, channel: str, position: Position, client: str) -> Ack:
        check_offset("offset", position.offset)
        key = (user, channel)
        current = self._acks.get(key)
        if current is None or current.epoch != position.epoch or current.offset < position.offset:
            current = self._acks[key] = Ack(position.offset, position.epoch, time.time(), client)
            self._acks.move_to_end(key)
            while len(self._acks) > MAX_ACKS:
                self._acks.popitem(last=False)
        return current

    async def acked(self, user: str, channel: str) -> Ack | None:
        return self._acks.get((user, channel))

    async def acks(self, channel: str, offset: int, limit: int = 100) -> list[tuple[str, Ack]]:
        check_offset("offset", offset)
        check_offset("limit", limit)
        epoch = self._streams[channel].epoch if channel in self._streams else ""
        found = [
            (user, ack)
            for (user, chan), ack in self._acks.items()
            if chan == channel and ack.offset >= offset and ack.epoch == epoch
        ]
        return found[:limit]

    async def num_streams(self) -> int:
        return len(self._streams)

    async def sweep(self) -> None:
        now = self._clock()
        for name, stream in list(self._streams.items()):
            stream.trim(now)
            if not stream.items and stream.expire_at < now:
                del self._streams[name]
