"""The Redis PresenceStore passes the shared presence checks in every topology,
and its entries expire when their node stops refreshing them."""

from __future__ import annotations

import pytest

from tests.redis_fixtures import engine_on, fresh_prefixes
from tidings.engine.redis import RedisEngine, RedisSettings
from tidings.presence.base import PresenceStore
from tidings.presence.redis import RedisPresenceStore
from tidings.testing import (
    PRESENCE_STORE_CHECKS,
    check_presence_expiry,
    check_presence_node_gone,
    check_presence_store,
)
from tidings.testing.clock import FakeClock
from tidings.testing.presence import PresenceStoreCheck, PresenceStoreFactory


def redis_store(settings: RedisSettings) -> PresenceStoreFactory:
    prefixes = fresh_prefixes(settings)

    def make() -> PresenceStore:
        return RedisPresenceStore(engine_on(settings, next(prefixes)), owns_engine=True)

    return make


@pytest.mark.parametrize("check", PRESENCE_STORE_CHECKS, ids=lambda c: c.__name__)
async def test_check(engine_settings: RedisSettings, check: PresenceStoreCheck) -> None:
    await check(redis_store(engine_settings))


async def test_whole_suite(engine_settings: RedisSettings) -> None:
    await check_presence_store(redis_store(engine_settings))


async def test_entries_of_a_dead_node_expire(engine_settings: RedisSettings) -> None:
    def pair(clock: FakeClock) -> tuple[PresenceStore, PresenceStore]:
        return (
            RedisPresenceStore(engine_on(engine_settings), clock=clock, owns_engine=True),
            RedisPresenceStore(engine_on(engine_settings), clock=clock, owns_engine=True),
        )

    await check_presence_expiry(pair)


async def test_entries_of_a_node_found_gone_stop_counting_at_once(
    engine_settings: RedisSettings,
) -> None:
    def pair(clock: FakeClock) -> tuple[PresenceStore, PresenceStore]:
        return (
            RedisPresenceStore(engine_on(engine_settings), clock=clock, owns_engine=True),
            RedisPresenceStore(engine_on(engine_settings), clock=clock, owns_engine=True),
        )

    await check_presence_node_gone(pair)


class IgnoresNodeGone(RedisPresenceStore):
    """Only expiry forgets a dead node's clients."""

    def node_gone(self, node_id: str) -> None:
        pass


async def test_node_gone_check_rejects_a_store_that_ignores_it(
    engine_settings: RedisSettings,
) -> None:
    def pair(clock: FakeClock) -> tuple[PresenceStore, PresenceStore]:
        made = [engine_on(engine_settings) for _ in range(2)]
        return (
            IgnoresNodeGone(made[0], clock=clock, owns_engine=True),
            IgnoresNodeGone(made[1], clock=clock, owns_engine=True),
        )

    with pytest.raises(AssertionError, match="after node_gone"):
        await check_presence_node_gone(pair)


class NeverExpires(RedisPresenceStore):
    """Ignores the clock: entries live for ever."""

    def __init__(self, engine: RedisEngine, clock: FakeClock) -> None:
        super().__init__(engine, clock=lambda: 1000.0, owns_engine=True)


async def test_expiry_check_rejects_a_store_that_never_expires(
    engine_settings: RedisSettings,
) -> None:
    def pair(clock: FakeClock) -> tuple[PresenceStore, PresenceStore]:
        return (
            NeverExpires(engine_on(engine_settings), clock),
            NeverExpires(engine_on(engine_settings), clock),
        )

    with pytest.raises(AssertionError, match="dead node"):
        await check_presence_expiry(pair)
