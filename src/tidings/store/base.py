"""The history store interface.

Guarantees every implementation gives (checked by the conformance suite):
- offsets of a channel increase by exactly one per appended publication;
- a stream keeps its epoch until it is removed or lost; a new epoch means
  earlier positions are meaningless;
- at most `size` publications, none older than `ttl` seconds, are returned;
- reading since a position returns *all* publications after it, or raises
  `UnrecoverablePosition` — never a silent gap;
- reading or looking at a channel never creates its stream: only an append
  does (a never-published channel costs nothing, whatever the readers do);
- offsets, limits and sizes outside what a 64-bit signed integer holds are
  refused with `OutOfRange` before anything is written, and one failing write
  never fails another caller's write.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from tidings.protocol.centrifuge.messages import Publication


@dataclass(frozen=True, slots=True)
class Position:
    """Where a stream is: the offset of its last publication and its epoch."""

    offset: int
    epoch: str


class UnrecoverablePosition(Exception):
    """The publications after the asked position are no longer (or never were) here."""


@dataclass(frozen=True, slots=True)
class Ack:
    """A user's acknowledged position in a channel: everything up to `offset` is received."""

    offset: int
    epoch: str
    time: float
    client: str


class StoreWriteError(Exception):
    """The store could not keep a publication (disk full, I/O error): publish must fail."""


class StreamLimitReached(StoreWriteError):
    """An append would create a stream beyond the store's bound on streams."""


#: The largest offset, limit or size a store accepts: a signed 64-bit integer.
MAX_INT64 = 2**63 - 1


class OutOfRange(ValueError):
    """An offset, limit or size outside what a store accepts (refused before any I/O).

    Callers answer it as a bad request (error 107): the number came from outside.
    """


def check_offset(what: str, value: int) -> int:
    """`value` if 0 <= value < 2**63, else `OutOfRange` naming `what`."""
    if not 0 <= value <= MAX_INT64:
        raise OutOfRange(f"{what} must be between 0 and {MAX_INT64}, not {value}")
    return value


def check_limit(value: int) -> int:
    """A read limit: -1 (everything) or 0 <= value < 2**63."""
    if not -1 <= value <= MAX_INT64:
        raise OutOfRange(f"limit must be -1 (all) or between 0 and {MAX_INT64}, not {value}")
    return value


def check_read(since: Position | None, limit: int) -> None:
    """The arguments of `HistoryStore.read`: `OutOfRange` for a limit or offset out of range."""
    check_limit(limit)
    if since is not None:
        check_offset("offset", since.offset)


class HistoryStore(ABC):
    #: Whether what this store keeps survives a restart of the process.
    durable = False

    @abstractmethod
    async def append(
        self,
        channel: str,
        pub: Publication,
        size: int,
        ttl: float,
        idempotency_key: str = "",
    ) -> Position:
        """Store `pub` (its offset is assigned here) and trim the stream to size and ttl.

        With an `idempotency_key` already stored in the channel, nothing is added
        and the earlier publication's position is returned. Raises
        `StoreWriteError` when the publication could not be kept
        (`StreamLimitReached` when it would be one stream too many).
        """

    @abstractmethod
    async def read(
        self,
        channel: str,
        since: Position | None = None,
        limit: int = -1,
        reverse: bool = False,
    ) -> tuple[list[Publication], Position]:
        """Publications (after `since` if given; at most `limit`, all if -1) and the top.

        `limit == 0` returns only the position. Raises `OutOfRange` for a limit
        below -1 or an offset outside 0 <= n < 2**63. Never creates the stream.
        """

    @abstractmethod
    async def position(self, channel: str) -> Position:
        """The current top of the stream (offset 0 if never published).

        A never-published channel has no stream, yet its epoch is stable: the
        first append keeps the epoch that readers were given before it.
        """

    @abstractmethod
    async def remove(self, channel: str) -> None:
        """Forget the channel's publications; offsets go on in the same epoch."""

    @abstractmethod
    def top(self, channel: str) -> Position | None:
        """The last known top of the stream, without I/O (None if not known yet)."""

    @abstractmethod
    async def find(self, channel: str, idempotency_key: str) -> int:
        """The offset stored under `idempotency_key` (0 if none)."""

    @abstractmethod
    async def ack(self, user: str, channel: str, position: Position, client: str) -> Ack:
        """Record that `user` has everything up to `position`; never moves backwards.

        Raises `OutOfRange` for an offset outside 0 <= n < 2**63.
        """

    @abstractmethod
    async def acked(self, user: str, channel: str) -> Ack | None:
        """The user's acknowledged position in `channel`, if any."""

    @abstractmethod
    async def acks(self, channel: str, offset: int, limit: int = 100) -> list[tuple[str, Ack]]:
        """Users (with their acks) whose acknowledged position covers `offset`."""

    @abstractmethod
    async def num_streams(self) -> int:
        """Streams kept: channels with a stored position (only appends create them)."""

    async def sweep(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Drop expired publications everywhere (called periodically by the node)."""

    async def close(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Release resources."""
