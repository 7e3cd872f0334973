"""Every KeyedStateStore passes the shared checks: memory here, Redis in every topology."""

from __future__ import annotations

import pytest

from tests.redis_fixtures import engine_on, fresh_prefixes
from tidings.engine.redis import RedisSettings
from tidings.store.base import Position
from tidings.store.keyed import KeyedStateStore
from tidings.store.keyed_memory import MemoryKeyedStateStore
from tidings.store.keyed_redis import RedisKeyedStateStore
from tidings.testing.clock import FakeClock
from tidings.testing.keyed import (
    KEYED_STATE_STORE_CHECKS,
    KeyedStoreCheck,
    KeyedStoreFactory,
    check_keyed_state_store,
)


def memory(clock: FakeClock) -> KeyedStateStore:
    return MemoryKeyedStateStore(clock=clock)


def redis_store(settings: RedisSettings) -> KeyedStoreFactory:
    prefixes = fresh_prefixes(settings)

    def make(clock: FakeClock) -> KeyedStateStore:
        engine = engine_on(settings, next(prefixes))
        return RedisKeyedStateStore(engine, clock=clock, owns_engine=True)

    return make


@pytest.mark.parametrize("check", KEYED_STATE_STORE_CHECKS, ids=lambda c: c.__name__)
async def test_memory(check: KeyedStoreCheck) -> None:
    await check(memory)


@pytest.mark.parametrize("check", KEYED_STATE_STORE_CHECKS, ids=lambda c: c.__name__)
async def test_redis(engine_settings: RedisSettings, check: KeyedStoreCheck) -> None:
    await check(redis_store(engine_settings))


# --- the suite itself must catch broken stores -------------------------------------


class ForgetsRemovals(MemoryKeyedStateStore):
    async def read_stream(
        self, channel: str, since: Position | None, limit: int = 100
    ) -> tuple[list, Position]:  # type: ignore[type-arg]
        changes, top = await super().read_stream(channel, since, limit)
        return [c for c in changes if not c.removed], top


class NeverExpiresKeys(MemoryKeyedStateStore):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=lambda: 1000.0)


class RecoversAnything(MemoryKeyedStateStore):
    async def read_stream(
        self, channel: str, since: Position | None, limit: int = 100
    ) -> tuple[list, Position]:  # type: ignore[type-arg]
        return await super().read_stream(channel, None, limit)


@pytest.mark.parametrize("broken", [ForgetsRemovals, NeverExpiresKeys, RecoversAnything])
async def test_suite_rejects_broken_store(broken: type[MemoryKeyedStateStore]) -> None:
    with pytest.raises(AssertionError):
        await check_keyed_state_store(lambda clock: broken(clock=clock))


async def test_thousands_of_keys_page_through_bounded(engine_settings: RedisSettings) -> None:
    """5000 keys with odd characters page through in key order, pages never over the limit."""
    for store in (MemoryKeyedStateStore(), redis_store(engine_settings)(FakeClock())):
        from tidings.store.keyed import MapLimits

        limits = MapLimits(stream_size=10, stream_ttl=60.0)
        keys = [f"k{i}\u00e9 {{}}\n\t\u2603" for i in range(5000)]
        for key in keys:
            await store.publish("big", key, b"x", limits)
        seen: list[str] = []
        cursor = ""
        while True:
            page = await store.read_state("big", cursor, 1000)
            assert len(page.entries) <= 1000
            seen += [e.key for e in page.entries]
            cursor = page.cursor
            if not cursor:
                break
        assert seen == sorted(keys, key=lambda k: k.encode())
        assert await store.stats("big") == 5000
        await store.close()
