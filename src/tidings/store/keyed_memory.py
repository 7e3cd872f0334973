"""The keyed state store in this process: one node, nothing survives a restart."""

from __future__ import annotations

import bisect
import itertools
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from tidings.store.base import Position, UnrecoverablePosition, check_offset
from tidings.store.keyed import (
    IDEMPOTENCY,
    IDEMPOTENCY_TTL,
    KEY_EXISTS,
    KEY_NOT_FOUND,
    VERSION,
    KeyedEntry,
    KeyedStateStore,
    MapLimits,
    StatePage,
    WriteCondition,
    WriteSuppressed,
    check_key,
    check_limits,
    check_page,
    check_resume,
    check_stream_read,
    check_write,
)


@dataclass(slots=True)
class _Channel:
    epoch: str
    top: int = 0
    entries: dict[str, KeyedEntry] = field(default_factory=dict)
    #: Live keys in order (kept sorted: pages are read by bisecting it).
    keys: list[str] = field(default_factory=list)
    #: key -> expiry time (seconds, this store's clock); keys without TTL are absent.
    expires: dict[str, float] = field(default_factory=dict)
    stream: deque[KeyedEntry] = field(default_factory=deque)
    #: The offset of the last change no longer kept (0: none lost).
    trimmed: int = 0
    #: The stream bounds of the last write (reads trim by age with them too).
    stream_size: int = 0
    stream_ttl: float = 0.0
    #: key -> (version, version epoch) of its last versioned set.
    versions: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: idempotency key -> (result, expiry time); `expiring` has them in expiry order.
    results: dict[str, tuple[Position, float]] = field(default_factory=dict)
    expiring: deque[tuple[float, str]] = field(default_factory=deque)


class MemoryKeyedStateStore(KeyedStateStore):
    """Dictionaries and deques; atomic because no step awaits."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._channels: dict[str, _Channel] = {}

    def _channel(self, channel: str) -> _Channel:
        state = self._channels.get(channel)
        if state is None:
            state = self._channels[channel] = _Channel(epoch=secrets.token_hex(4))
        return state

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _append(self, state: _Channel, entry: KeyedEntry, limits: MapLimits) -> None:
        state.top = entry.offset
        state.stream_size, state.stream_ttl = limits.stream_size, limits.stream_ttl
        if limits.stream_size <= 0 or limits.stream_ttl <= 0:
            state.trimmed = entry.offset
            return
        state.stream.append(entry)
        self._trim(state, limits.stream_size, limits.stream_ttl)

    def _trim(self, state: _Channel, size: int, ttl: float) -> None:
        oldest = self._now_ms() - int(ttl * 1000)
        while state.stream and (len(state.stream) > size or state.stream[0].time <= oldest):
            state.trimmed = state.stream.popleft().offset

    def _drop_key(self, state: _Channel, key: str) -> None:
        del state.entries[key]
        state.expires.pop(key, None)
        state.versions.pop(key, None)
        index = bisect.bisect_left(state.keys, key)
        del state.keys[index]

    def _alive(self, state: _Channel, key: str) -> bool:
        expires = state.expires.get(key)
        return key in state.entries and (expires is None or expires > self._clock())

    def _repeated(self, state: _Channel | None, idempotency_key: str) -> None:
        """`WriteSuppressed` if `idempotency_key` was used within its TTL."""
        if state is None or not idempotency_key:
            return
        now = self._clock()
        while state.expiring and state.expiring[0][0] <= now:
            _, used = state.expiring.popleft()
            if used in state.results and state.results[used][1] <= now:
                del state.results[used]
        seen = state.results.get(idempotency_key)
        if seen is not None:
            raise WriteSuppressed(IDEMPOTENCY, seen[0])

    def _remember(self, state: _Channel, idempotency_key: str) -> None:
        if idempotency_key:
            expires = self._clock() + IDEMPOTENCY_TTL
            state.results[idempotency_key] = (Position(state.top, state.epoch), expires)
            state.expiring.append((expires, idempotency_key))

    def _check(self, state: _Channel, key: str, cond: WriteCondition, limits: MapLimits) -> None:
        """The version and key mode checks of a set (the idempotency key was checked)."""
        top = Position(state.top, state.epoch)
        stored = state.versions.get(key)
        alive = self._alive(state, key)
        if cond.version and alive and stored is not None:
            same_epoch = not cond.version_epoch or cond.version_epoch == stored[1]
            if same_epoch and cond.version <= stored[0]:
                raise WriteSuppressed(VERSION, top)
        if cond.key_mode == "if_new" and alive:
            if cond.refresh_ttl and limits.key_ttl > 0:
                state.expires[key] = self._clock() + limits.key_ttl
            raise WriteSuppressed(KEY_EXISTS, top)
        if cond.key_mode == "if_exists" and not alive:
            raise WriteSuppressed(KEY_NOT_FOUND, top)

    async def publish(
        self,
        channel: str,
        key: str,
        data: bytes,
        limits: MapLimits,
        condition: WriteCondition | None = None,
    ) -> tuple[KeyedEntry, Position]:
        cond = check_write(key, limits, condition or WriteCondition())
        self._repeated(self._channels.get(channel), cond.idempotency_key)
        state = self._channel(channel)
        self._check(state, key, cond, limits)
        entry = KeyedEntry(
            key, bytes(data), state.top + 1, self._now_ms(), tags=cond.tags, info=cond.info
        )
        if cond.version:
            state.versions[key] = (cond.version, cond.version_epoch)
        if key not in state.entries:
            bisect.insort(state.keys, key)
        state.entries[key] = entry
        if limits.key_ttl > 0:
            state.expires[key] = self._clock() + limits.key_ttl
        else:
            state.expires.pop(key, None)
        self._append(state, entry, limits)
        self._remember(state, cond.idempotency_key)
        return entry, Position(state.top, state.epoch)

    async def remove(
        self,
        channel: str,
        key: str,
        limits: MapLimits,
        idempotency_key: str = "",
    ) -> tuple[KeyedEntry | None, Position]:
        check_write(key, limits, WriteCondition(idempotency_key=idempotency_key))
        state = self._channels.get(channel)
        self._repeated(state, idempotency_key)
        if state is None or not self._alive(state, key):
            return None, await self.position(channel)
        tags = state.entries[key].tags
        self._drop_key(state, key)
        entry = KeyedEntry(key, b"", state.top + 1, self._now_ms(), removed=True, tags=tags)
        self._append(state, entry, limits)
        self._remember(state, idempotency_key)
        return entry, Position(state.top, state.epoch)

    async def read_state(self, channel: str, cursor: str = "", limit: int = 100) -> StatePage:
        check_page(limit)
        state = self._channels.get(channel)
        if state is None:
            return StatePage([], Position(0, ""), "")
        start = bisect.bisect_right(state.keys, cursor) if cursor else 0
        # Like the Redis store: `limit` keys are looked at, expired ones left out.
        scanned = state.keys[start : start + limit]
        entries = [state.entries[key] for key in scanned if self._alive(state, key)]
        more = start + limit < len(state.keys)
        return StatePage(entries, Position(state.top, state.epoch), scanned[-1] if more else "")

    async def read_key(self, channel: str, key: str) -> tuple[KeyedEntry | None, Position]:
        check_key(key)
        state = self._channels.get(channel)
        if state is None:
            return None, Position(0, "")
        entry = state.entries[key] if self._alive(state, key) else None
        return entry, Position(state.top, state.epoch)

    async def read_stream(
        self, channel: str, since: Position | None, limit: int = 100
    ) -> tuple[list[KeyedEntry], Position]:
        check_stream_read(since, limit)
        state = self._channels.get(channel)
        if state is None:
            if since is not None and (since.offset or since.epoch):
                raise UnrecoverablePosition(f"channel {channel!r} has no stream")
            return [], Position(0, "")
        top = Position(state.top, state.epoch)
        if state.stream:
            self._trim(state, state.stream_size, state.stream_ttl)
        if since is None:
            return list(itertools.islice(state.stream, limit)), top
        check_resume(since, top)
        if since.offset == state.top:
            return [], top
        if since.offset < state.trimmed:
            raise UnrecoverablePosition("changes after the position were trimmed")
        skip = since.offset - (state.stream[0].offset - 1) if state.stream else 0
        return list(itertools.islice(state.stream, skip, skip + limit)), top

    async def read_stream_back(
        self, channel: str, before: int, limit: int = 100
    ) -> tuple[list[KeyedEntry], Position]:
        check_page(limit)
        check_offset("before", before)
        state = self._channels.get(channel)
        if state is None:
            return [], Position(0, "")
        if state.stream:
            self._trim(state, state.stream_size, state.stream_ttl)
        older = (e for e in reversed(state.stream) if not before or e.offset < before)
        return list(itertools.islice(older, limit)), Position(state.top, state.epoch)

    async def expire(self, channel: str, limits: MapLimits, limit: int = 1000) -> list[KeyedEntry]:
        check_limits(limits)
        state = self._channels.get(channel)
        if state is None:
            return []
        now = self._clock()
        gone = [key for key, at in state.expires.items() if at <= now][:limit]
        removals = []
        for key in gone:
            self._drop_key(state, key)
            entry = KeyedEntry(key, b"", state.top + 1, self._now_ms(), removed=True)
            self._append(state, entry, limits)
            removals.append(entry)
        return removals

    async def position(self, channel: str) -> Position:
        state = self._channels.get(channel)
        return Position(0, "") if state is None else Position(state.top, state.epoch)

    async def stats(self, channel: str) -> int:
        state = self._channels.get(channel)
        if state is None:
            return 0
        return sum(1 for key in state.keys if self._alive(state, key))

    async def clear(self, channel: str) -> None:
        self._channels.pop(channel, None)
