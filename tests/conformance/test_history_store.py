"""Every HistoryStore implementation passes the shared conformance checks.

A new implementation is one more entry in IMPLEMENTATIONS.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from tidings.protocol.centrifuge.messages import Publication
from tidings.store.base import HistoryStore, Position
from tidings.store.memory import MemoryHistoryStore
from tidings.store.sqlite import SqliteHistoryStore
from tidings.testing import HISTORY_STORE_CHECKS, FakeClock, check_history_store
from tidings.testing.store import HistoryStoreCheck, HistoryStoreFactory


def sqlite(tmp_path: Path) -> HistoryStoreFactory:
    """A fresh database file per store."""
    paths = (tmp_path / f"streams-{n}.sqlite3" for n in itertools.count())
    return lambda clock: SqliteHistoryStore(next(paths), clock=clock, default_policy="never")


#: name -> (tmp_path -> factory). A new implementation is one line here.
IMPLEMENTATIONS: dict[str, Callable[[Path], HistoryStoreFactory]] = {
    "memory": lambda _: lambda clock: MemoryHistoryStore(clock=clock),
    "sqlite": sqlite,
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> HistoryStoreFactory:
    return IMPLEMENTATIONS[request.param](tmp_path)


@pytest.mark.parametrize("check", HISTORY_STORE_CHECKS, ids=lambda c: c.__name__)
async def test_check(factory: HistoryStoreFactory, check: HistoryStoreCheck) -> None:
    await check(factory)


async def test_whole_suite(factory: HistoryStoreFactory) -> None:
    await check_history_store(factory)


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

    async def append(self, channel: str, pub: Publication, size: int, ttl: float) -> Position:
        return await super().append(channel, pub, size, 0.0)


class ResetOnRemoveStore(MemoryHistoryStore):
    """Restarts offsets at 0 in the same epoch after remove."""

    async def remove(self, channel: str) -> None:
        await super().remove(channel)
        self._streams[channel].offset = 0


class NewEpochPerAppendStore(MemoryHistoryStore):
    """Changes the epoch on every append."""

    async def append(self, channel: str, pub: Publication, size: int, ttl: float) -> Position:
        position = await super().append(channel, pub, size, ttl)
        self._streams[channel].epoch = f"e{position.offset}"
        return Position(position.offset, f"e{position.offset}")


@pytest.mark.parametrize(
    "broken", [GapStore, NoTtlStore, ResetOnRemoveStore, NewEpochPerAppendStore]
)
async def test_suite_rejects_broken_store(broken: type[MemoryHistoryStore]) -> None:
    def make(clock: FakeClock) -> HistoryStore:
        return broken(clock=clock)

    with pytest.raises(AssertionError):
        await check_history_store(make)
