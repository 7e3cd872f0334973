"""The Redis HistoryStore passes the shared conformance checks in every topology.

One server, two shards and a 3-primary Redis Cluster (real redis-server
processes). The durable checks reopen the same key prefix.
"""

from __future__ import annotations

import pytest

from tests.redis_fixtures import engine_on, fresh_prefixes
from tidings.engine.redis import RedisSettings
from tidings.store.base import HistoryStore
from tidings.store.redis import RedisHistoryStore
from tidings.store.redis_streams import RedisStreams
from tidings.testing import (
    DURABLE_STORE_CHECKS,
    HISTORY_STORE_CHECKS,
    FakeClock,
    check_durable_store,
    check_history_store,
)
from tidings.testing.store import HistoryStoreCheck, HistoryStoreFactory


def redis_store(settings: RedisSettings, fresh: bool) -> HistoryStoreFactory:
    """Stores on `settings`' engine: a new key prefix each time when `fresh`."""
    prefixes = fresh_prefixes(settings)

    def make(clock: FakeClock) -> HistoryStore:
        engine = engine_on(settings, next(prefixes) if fresh else "")
        return RedisHistoryStore(RedisStreams(engine, clock), owns_engine=True)

    return make


@pytest.mark.parametrize("check", HISTORY_STORE_CHECKS, ids=lambda c: c.__name__)
async def test_check(engine_settings: RedisSettings, check: HistoryStoreCheck) -> None:
    await check(redis_store(engine_settings, fresh=True))


async def test_whole_suite(engine_settings: RedisSettings) -> None:
    await check_history_store(redis_store(engine_settings, fresh=True))


@pytest.mark.parametrize("check", DURABLE_STORE_CHECKS, ids=lambda c: c.__name__)
async def test_durable_check(engine_settings: RedisSettings, check: HistoryStoreCheck) -> None:
    await check(redis_store(engine_settings, fresh=False))


async def test_whole_durable_suite(engine_settings: RedisSettings) -> None:
    await check_durable_store(redis_store(engine_settings, fresh=False))
