"""Every HistoryStore implementation passes the shared conformance checks.

A new implementation is one more entry in IMPLEMENTATIONS (and in DURABLE if
it keeps its data across a reopen). SQLite runs once per fsync policy.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from tidings.protocol.centrifuge.messages import Publication
from tidings.store.base import Ack, HistoryStore, Position, StoreWriteError
from tidings.store.memory import MemoryHistoryStore
from tidings.store.sqlite import SqliteHistoryStore
from tidings.testing import (
    DURABLE_STORE_CHECKS,
    HISTORY_STORE_CHECKS,
    FakeClock,
    check_durable_store,
    check_history_store,
)
from tidings.testing.store import HistoryStoreCheck, HistoryStoreFactory


def sqlite(policy: str) -> Callable[[Path], HistoryStoreFactory]:
    """A fresh database file per store, written with fsync `policy`."""

    def make(tmp_path: Path) -> HistoryStoreFactory:
        paths = (tmp_path / f"streams-{n}.sqlite3" for n in itertools.count())
        return lambda clock: SqliteHistoryStore(next(paths), clock=clock, default_policy=policy)

    return make


def sqlite_reopen(policy: str) -> Callable[[Path], HistoryStoreFactory]:
    """The same database file every time: for the durability checks."""

    def make(tmp_path: Path) -> HistoryStoreFactory:
        path = tmp_path / "streams.sqlite3"
        return lambda clock: SqliteHistoryStore(path, clock=clock, default_policy=policy)

    return make


#: name -> (tmp_path -> factory). A new implementation is one line here.
IMPLEMENTATIONS: dict[str, Callable[[Path], HistoryStoreFactory]] = {
    "memory": lambda _: lambda clock: MemoryHistoryStore(clock=clock),
    "sqlite-always": sqlite("always"),
    "sqlite-batch": sqlite("batch"),
    "sqlite-never": sqlite("never"),
}

#: name -> (tmp_path -> factory opening the same place on every call).
DURABLE: dict[str, Callable[[Path], HistoryStoreFactory]] = {
    "sqlite-always": sqlite_reopen("always"),
    "sqlite-batch": sqlite_reopen("batch"),
    "sqlite-never": sqlite_reopen("never"),
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> HistoryStoreFactory:
    return IMPLEMENTATIONS[request.param](tmp_path)


@pytest.fixture(params=sorted(DURABLE))
def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> HistoryStoreFactory:
    return DURABLE[request.param](tmp_path)


@pytest.mark.parametrize("check", HISTORY_STORE_CHECKS, ids=lambda c: c.__name__)
async def test_check(factory: HistoryStoreFactory, check: HistoryStoreCheck) -> None:
    await check(factory)


async def test_whole_suite(factory: HistoryStoreFactory) -> None:
    await check_history_store(factory)


@pytest.mark.parametrize("check", DURABLE_STORE_CHECKS, ids=lambda c: c.__name__)
async def test_durable_check(reopen: HistoryStoreFactory, check: HistoryStoreCheck) -> None:
    await check(reopen)


async def test_whole_durable_suite(reopen: HistoryStoreFactory) -> None:
    await check_durable_store(reopen)


def test_every_durable_implementation_runs_the_durable_checks(tmp_path: Path) -> None:
    durable = set()
    for name, make in IMPLEMENTATIONS.items():
        store = make(tmp_path / name)(FakeClock())
        if store.durable:
            durable.add(name)
        if isinstance(store, SqliteHistoryStore):
            store._ops.put(None)  # stop the writer thread without a loop
    assert durable == set(DURABLE)


# --- the suite itself must catch broken stores -------------------------------------


class GapStore(MemoryHistoryStore):
    """Returns what it has after a trimmed position instead of raising."""

    async def read(
        self,
        channel: str,
        since: Position | None = None,
        limit: int = -1,
        reverse: bool = False,
    ) -> tuple[list[Publication], Position]:
        pubs, top = await super().read(channel, None, limit, reverse)
        if since is not None:
            pubs = [p for p in pubs if p.offset > since.offset]
        return pubs, top


class NoTtlStore(MemoryHistoryStore):
    """Ignores the ttl."""

    async def append(
        self, channel: str, pub: Publication, size: int, ttl: float, idempotency_key: str = ""
    ) -> Position:
        return await super().append(channel, pub, size, 0.0, idempotency_key)


class ResetOnRemoveStore(MemoryHistoryStore):
    """Restarts offsets at 0 in the same epoch after remove."""

    async def remove(self, channel: str) -> None:
        await super().remove(channel)
        self._streams[channel].offset = 0


class NewEpochPerAppendStore(MemoryHistoryStore):
    """Changes the epoch on every append."""

    async def append(
        self, channel: str, pub: Publication, size: int, ttl: float, idempotency_key: str = ""
    ) -> Position:
        position = await super().append(channel, pub, size, ttl, idempotency_key)
        self._streams[channel].epoch = f"e{position.offset}"
        return Position(position.offset, f"e{position.offset}")


class IgnoresKeyStore(MemoryHistoryStore):
    """Stores every publication, idempotency key or not."""

    async def append(
        self, channel: str, pub: Publication, size: int, ttl: float, idempotency_key: str = ""
    ) -> Position:
        return await super().append(channel, pub, size, ttl)


class NoFindStore(MemoryHistoryStore):
    """Deduplicates but cannot look a key up."""

    async def find(self, channel: str, idempotency_key: str) -> int:
        return 0


class StaleTopStore(MemoryHistoryStore):
    """`top` lags one publication behind."""

    def top(self, channel: str) -> Position | None:
        top = super().top(channel)
        return Position(top.offset - 1, top.epoch) if top is not None and top.offset else top


class AckBackwardsStore(MemoryHistoryStore):
    """The last ack wins, even an older one."""

    async def ack(self, user: str, channel: str, position: Position, client: str) -> Ack:
        ack = self._acks[(user, channel)] = Ack(position.offset, position.epoch, 0.0, client)
        return ack


class AckKeepsOldEpochStore(MemoryHistoryStore):
    """An ack in a new epoch with a lower offset is ignored."""

    async def ack(self, user: str, channel: str, position: Position, client: str) -> Ack:
        current = self._acks.get((user, channel))
        if current is not None and current.offset >= position.offset:
            return current
        return await super().ack(user, channel, position, client)


class AcksAnyEpochStore(MemoryHistoryStore):
    """Lists acks whatever their epoch."""

    async def acks(self, channel: str, offset: int, limit: int = 100) -> list[tuple[str, Ack]]:
        found = [(u, a) for (u, c), a in self._acks.items() if c == channel and a.offset >= offset]
        return found[:limit]


class CreatesOnReadStore(MemoryHistoryStore):
    """Keeps a stream for every channel looked at (the old behaviour)."""

    async def position(self, channel: str) -> Position:
        top = await super().position(channel)
        if channel not in self._streams:
            self._new_stream(channel, 0.0).epoch = top.epoch
        return top


class AcceptsAnyIntegerStore(MemoryHistoryStore):
    """Stores an ack whatever its offset."""

    async def ack(self, user: str, channel: str, position: Position, client: str) -> Ack:
        ack = self._acks[(user, channel)] = Ack(position.offset, position.epoch, 0.0, client)
        return ack


class FailsItsNeighboursStore(MemoryHistoryStore):
    """A refused ack fails the appends running beside it (a shared transaction)."""

    _poisoned = False

    async def ack(self, user: str, channel: str, position: Position, client: str) -> Ack:
        if position.offset < 0:
            self._poisoned = True
        return await super().ack(user, channel, position, client)

    async def append(
        self, channel: str, pub: Publication, size: int, ttl: float, idempotency_key: str = ""
    ) -> Position:
        await asyncio.sleep(0)
        if self._poisoned:
            raise StoreWriteError("rolled back with a neighbour")
        return await super().append(channel, pub, size, ttl, idempotency_key)


@pytest.mark.parametrize(
    "broken",
    [
        CreatesOnReadStore,
        AcceptsAnyIntegerStore,
        FailsItsNeighboursStore,
        GapStore,
        NoTtlStore,
        ResetOnRemoveStore,
        NewEpochPerAppendStore,
        IgnoresKeyStore,
        NoFindStore,
        StaleTopStore,
        AckBackwardsStore,
        AckKeepsOldEpochStore,
        AcksAnyEpochStore,
    ],
)
async def test_suite_rejects_broken_store(broken: type[MemoryHistoryStore]) -> None:
    def make(clock: FakeClock) -> HistoryStore:
        return broken(clock=clock)

    with pytest.raises(AssertionError):
        await check_history_store(make)


class ForgetfulDurableStore(MemoryHistoryStore):
    """Says it is durable; every instance starts empty."""

    durable = True


class NotDurableSqliteStore(SqliteHistoryStore):
    """A SQLite store that does not claim durability."""

    durable = False


async def test_durable_suite_rejects_forgetful_store() -> None:
    with pytest.raises(AssertionError, match="after reopening"):
        await check_durable_store(lambda clock: ForgetfulDurableStore(clock=clock))


async def test_durable_suite_rejects_new_epoch_on_reopen(tmp_path: Path) -> None:
    """A file store that starts a new epoch per open (offsets restart) is caught."""
    count = itertools.count()

    def make(clock: FakeClock) -> HistoryStore:
        return SqliteHistoryStore(tmp_path / f"s{next(count)}.sqlite3", clock=clock)

    with pytest.raises(AssertionError, match="after reopening"):
        await check_durable_store(make)


async def test_durable_suite_needs_the_durable_flag(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="durable"):
        await check_durable_store(
            lambda clock: NotDurableSqliteStore(tmp_path / "s.sqlite3", clock=clock)
        )
