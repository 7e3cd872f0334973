"""Expiring entries in Redis: a refresh in chunks keeps what is there, not what was."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tidings.engine.redis import RedisEngine, RedisSettings
from tidings.presence import redis_entries
from tidings.presence.redis_entries import ExpiringEntries
from tidings.testing.redis import RedisServer


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def engine(redis_server: RedisServer) -> AsyncIterator[RedisEngine]:
    engine = RedisEngine(RedisSettings([redis_server.url], prefix="entries"))
    try:
        yield engine
    finally:
        await engine.close()


async def test_refresh_in_chunks_moves_every_expiry(
    engine: RedisEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_entries, "REFRESH_CHUNK", 2)
    clock = Clock()
    entries = ExpiringEntries(engine, "t", 60, clock)
    try:
        for n in range(5):
            await entries.add(f"user{n % 2}", f"c{n}", b"v", "g", "node")
        clock.now += 40
        await entries.refresh()
        clock.now += 40  # past the first expiry, before the refreshed one
        assert sorted(m for m, _v, _g in await entries.get("user0")) == ["c0", "c2", "c4"]
        assert sorted(m for m, _v, _g in await entries.get("user1")) == ["c1", "c3"]
    finally:
        await entries.close()


async def test_an_entry_removed_during_a_refresh_stays_removed(
    engine: RedisEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_entries, "REFRESH_CHUNK", 1)
    entries = ExpiringEntries(engine, "t", 60)
    removals: list[asyncio.Task[None]] = []
    real_run = engine.batcher.run
    try:
        for member in ("a", "b", "c"):
            await entries.add("user", member, b"v", "g", "node")

        def run(*args: Any) -> asyncio.Future[Any]:
            if not removals:  # the first chunk is on its way: "c" leaves meanwhile
                removals.append(asyncio.ensure_future(entries.remove("user", "c")))
            return real_run(*args)

        monkeypatch.setattr(engine.batcher, "run", run)
        await entries.refresh()
        await removals[0]
        assert sorted(m for m, _v, _g in await entries.get("user")) == ["a", "b"]
    finally:
        await entries.close()
