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
- a write with a `WriteCondition` checks it in the same atomic step, in
  Centrifugo's order: idempotency key (a key seen within its TTL repeats the
  first result), then version (a set whose `version` is not above the key's
  stored one, in the same `version_epoch`, changes nothing; only with a
  stream), then key mode (`if_new` / `if_exists`). A write that changes
  nothing raises `WriteSuppressed` with the reason and the top, and appends
  nothing to the stream;
- offsets, limits, sizes and TTLs outside a signed 64-bit integer are refused
  with `OutOfRange` before anything is written; keys must be non-empty text of
  at most `MAX_KEY_BYTES` bytes (`InvalidKey`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from tidings.store.base import (
    MAX_INT64,
    OutOfRange,
    Position,
    UnrecoverablePosition,
    check_offset,
)

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
    #: Tags of the change (delivered with it, kept with the key in the state).
    tags: dict[str, str] | None = None
    #: The writer's ClientInfo, encoded (empty: none); map presence entries have it.
    info: bytes = b""


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


#: Centrifugo's suppress reasons (`MapPublishResult.suppress_reason`).
IDEMPOTENCY, VERSION, KEY_EXISTS, KEY_NOT_FOUND = (
    "idempotency",
    "version",
    "key_exists",
    "key_not_found",
)
KEY_MODES = ("", "if_new", "if_exists")
#: Seconds an idempotency key repeats its first result (Centrifugo's default, 5 minutes).
IDEMPOTENCY_TTL = 300.0


@dataclass(frozen=True, slots=True)
class WriteCondition:
    """What a write must satisfy, checked atomically with it (Centrifugo's map publish options)."""

    idempotency_key: str = ""
    #: Set only if above the key's stored version (same `version_epoch`); needs a stream.
    version: int = 0
    version_epoch: str = ""
    #: "" always writes; "if_new" only an absent key; "if_exists" only a present one.
    key_mode: str = ""
    #: With "if_new" on a present key: extend its TTL anyway (presence keep-alive).
    refresh_ttl: bool = False
    tags: dict[str, str] | None = None
    info: bytes = b""


class WriteSuppressed(Exception):
    """A conditional write that changed nothing: why (a suppress reason) and the top."""

    def __init__(self, reason: str, position: Position) -> None:
        super().__init__(reason)
        self.reason = reason
        self.position = position


def check_condition(condition: WriteCondition, limits: MapLimits) -> WriteCondition:
    """`condition` if the store can apply it, else `OutOfRange` (before any I/O)."""
    if condition.key_mode not in KEY_MODES:
        raise OutOfRange(f"key_mode must be one of {KEY_MODES[1:]}, not {condition.key_mode!r}")
    if not 0 <= condition.version <= MAX_INT64:
        raise OutOfRange(f"version must be between 0 and {MAX_INT64}")
    if condition.version and (limits.stream_size <= 0 or limits.stream_ttl <= 0):
        raise OutOfRange("version requires a map stream (map_stream_size and map_stream_ttl)")
    if len(condition.idempotency_key) > MAX_KEY_BYTES:
        raise OutOfRange(f"idempotency_key longer than {MAX_KEY_BYTES}")
    return condition


def check_write(key: object, limits: MapLimits, condition: WriteCondition) -> WriteCondition:
    """The arguments of a publish or a removal: `check_key`, `check_limits`, `check_condition`."""
    check_key(key)
    check_limits(limits)
    return check_condition(condition, limits)


def check_stream_read(since: Position | None, limit: int) -> None:
    """The arguments of `KeyedStateStore.read_stream`: a page size and an offset in range."""
    check_page(limit)
    if since is not None:
        check_offset("offset", since.offset)


def check_resume(since: Position, top: Position) -> None:
    """`UnrecoverablePosition` unless a stream at `top` can go on from `since`.

    What was trimmed away is for the store to check: only it knows its stream's tail.
    """
    fresh_start = since.offset == 0 and since.epoch == ""
    if not fresh_start and since.epoch != top.epoch:
        raise UnrecoverablePosition("the stream has another epoch")
    if since.offset > top.offset:
        raise UnrecoverablePosition("position ahead of the stream")


class KeyedStateStore(ABC):
    """Keyed state plus its change stream, per channel (see the module docstring)."""

    @abstractmethod
    async def publish(
        self,
        channel: str,
        key: str,
        data: bytes,
        limits: MapLimits,
        condition: WriteCondition | None = None,
    ) -> tuple[KeyedEntry, Position]:
        """Set `key` to `data`; returns the change (with its offset) and the new top.

        `WriteSuppressed` when `condition` says the write changes nothing.
        """

    @abstractmethod
    async def remove(
        self,
        channel: str,
        key: str,
        limits: MapLimits,
        idempotency_key: str = "",
    ) -> tuple[KeyedEntry | None, Position]:
        """Remove `key`; returns the removal (None if the key was absent) and the top.

        A repeated `idempotency_key` raises `WriteSuppressed("idempotency")`.
        """

    @abstractmethod
    async def read_state(self, channel: str, cursor: str = "", limit: int = 100) -> StatePage:
        """Live keys after `cursor` in key order, at most `limit`, and the current top."""

    @abstractmethod
    async def read_key(self, channel: str, key: str) -> tuple[KeyedEntry | None, Position]:
        """The live entry of `key` (None if absent or expired) and the current top."""

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
    async def read_stream_back(
        self, channel: str, before: int, limit: int = 100
    ) -> tuple[list[KeyedEntry], Position]:
        """Kept changes with offsets below `before` (0: all), newest first, at most `limit`."""

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
