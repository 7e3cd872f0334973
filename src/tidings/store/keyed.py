"""The keyed state store: the data behind map subscriptions (Centrifugo v6 "map" channels).

A map channel holds a state, `key -> latest entry`, plus a stream of changes
(sets and removals) with offsets in an epoch, as history does for ordinary
channels. A subscriber reads the state in pages (each page names the stream
position the first page was read at), then catches up from the stream since
that position, then goes live. A reconnecting subscriber recovers from its
stream position; when the stream no longer has what followed it
(`UnrecoverablePosition`), it reads a fresh snapshot.

Guarantees every implementation gives (checked by
`tidings.testing.check_keyed_state_store`):

- every change (set or removal) gets the next offset of the channel, in one
  atomic step with the state change and the stream append, so a state page
  read at position P plus the stream since P is the whole state;
- removals are kept in the stream (tombstones) as long as the stream keeps
  anything (`stream_size` changes, none older than `stream_ttl`);
  removing an absent key changes nothing and returns no entry;
- a key with a TTL disappears from reads once expired; `expire` turns the
  expired keys into removals in the stream (so recovering subscribers learn
  about them) and returns them, so live subscribers can be told too;
- state pages are in key order (byte order of the UTF-8 key) and the cursor is
  the last key of the page: a page never repeats a key of an earlier page;
- reading never creates a channel: only writes do;
- offsets, limits, sizes and TTLs outside a signed 64-bit integer are refused
  with `OutOfRange` before anything is written; keys must be non-empty text of
  at most `MAX_KEY_BYTES` bytes (`InvalidKey`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from tidings.store.base import MAX_INT64, OutOfRange, Position

#: The longest key accepted, in UTF-8 bytes (a key travels in every update of it).
MAX_KEY_BYTES = 1024
#: The largest page of state or stream one read returns.
MAX_PAGE = 10_000


class InvalidKey(ValueError):
    """A map key that is empty, too long or not valid text: refused before any I/O."""


@dataclass(frozen=True, slots=True)
class KeyedEntry:
    """One key's value (in a state page) or one change (in the stream)."""

    key: str
    data: bytes
    offset: int
    #: When the change was made, Unix milliseconds.
    time: int
    removed: bool = False


@dataclass(frozen=True, slots=True)
class StatePage:
    """A page of the state, the stream position it belongs to, and where the next starts."""

    entries: list[KeyedEntry]
    position: Position
    #: The last key of this page ("" when this is the last page).
    cursor: str


@dataclass(frozen=True, slots=True)
class MapLimits:
    """How long keys and changes are kept in one channel (from its namespace)."""

    #: Seconds a key lives after its last update (0: until removed).
    key_ttl: float = 0.0
    #: Changes kept in the stream (0: no stream, so no recovery).
    stream_size: int = 0
    #: Seconds a change is kept in the stream.
    stream_ttl: float = 0.0


def check_key(key: object) -> str:
    """`key` if it is a valid map key, else `InvalidKey` saying why."""
    if not isinstance(key, str) or not key:
        raise InvalidKey("a map key must be a non-empty string")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidKey("a map key must be valid UTF-8 text") from None
    if size > MAX_KEY_BYTES:
        raise InvalidKey(f"a map key must be at most {MAX_KEY_BYTES} bytes, not {size}")
    return key


def check_limits(limits: MapLimits) -> MapLimits:
    """`limits` if every number fits the stores, else `OutOfRange`."""
    for what, value in (
        ("key_ttl", limits.key_ttl),
        ("stream_size", limits.stream_size),
        ("stream_ttl", limits.stream_ttl),
    ):
        if not 0 <= value <= MAX_INT64 / 1000:
            raise OutOfRange(f"{what} must be between 0 and {MAX_INT64 // 1000}, not {value}")
    return limits


def check_page(limit: int) -> int:
    """A page size: 1 <= limit <= MAX_PAGE, else `OutOfRange`."""
    if not 1 <= limit <= MAX_PAGE:
        raise OutOfRange(f"limit must be between 1 and {MAX_PAGE}, not {limit}")
    return limit


class KeyedStateStore(ABC):
    """Keyed state plus its change stream, per channel (see the module docstring)."""

    @abstractmethod
    async def publish(
        self, channel: str, key: str, data: bytes, limits: MapLimits
    ) -> tuple[KeyedEntry, Position]:
        """Set `key` to `data`; returns the change (with its offset) and the new top."""

    @abstractmethod
    async def remove(
        self, channel: str, key: str, limits: MapLimits
    ) -> tuple[KeyedEntry | None, Position]:
        """Remove `key`; returns the removal (None if the key was absent) and the top."""

    @abstractmethod
    async def read_state(self, channel: str, cursor: str = "", limit: int = 100) -> StatePage:
        """Live keys after `cursor` in key order, at most `limit`, and the current top."""

    @abstractmethod
    async def read_stream(
        self, channel: str, since: Position | None, limit: int = 100
    ) -> tuple[list[KeyedEntry], Position]:
        """Changes after `since` (all kept ones if None), at most `limit`, and the top.

        Raises `UnrecoverablePosition` when the changes right after `since` are
        gone (trimmed, expired, or another epoch). `since == Position(0, "")`
        means "from the start" and is recoverable while nothing was trimmed.
        """

    @abstractmethod
    async def expire(self, channel: str, limits: MapLimits, limit: int = 1000) -> list[KeyedEntry]:
        """Turn up to `limit` expired keys into removals in the stream; return them."""

    @abstractmethod
    async def position(self, channel: str) -> Position:
        """The top of the channel's stream (Position(0, "") if never written)."""

    @abstractmethod
    async def stats(self, channel: str) -> int:
        """The number of live keys."""

    @abstractmethod
    async def clear(self, channel: str) -> None:
        """Forget the channel: state, stream and epoch (the next write starts a new epoch)."""

    async def close(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Release resources."""
