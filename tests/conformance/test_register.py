"""Every UserRegister implementation passes the shared conformance checks.

Memory, and Redis in every topology (real redis-server processes); the
Redis register also forgets the connections of a dead node.
"""

from __future__ import annotations

import pytest

from tests.redis_fixtures import engine_on, fresh_prefixes
from tidings.engine.redis import RedisSettings
from tidings.register.base import UserConnection, UserRegister
from tidings.register.memory import MemoryUserRegister
from tidings.register.redis import RedisUserRegister
from tidings.testing import (
    REGISTER_CHECKS,
    check_register,
    check_register_expiry,
    check_register_node_gone,
)
from tidings.testing.clock import FakeClock
from tidings.testing.register import RegisterCheck, RegisterFactory, RegisterPairFactory


def redis_register(settings: RedisSettings) -> RegisterFactory:
    prefixes = fresh_prefixes(settings)

    def make() -> UserRegister:
        return RedisUserRegister(engine_on(settings, next(prefixes)), owns_engine=True)

    return make


@pytest.mark.parametrize("check", REGISTER_CHECKS, ids=lambda c: c.__name__)
async def test_memory(check: RegisterCheck) -> None:
    await check(MemoryUserRegister)


@pytest.mark.parametrize("check", REGISTER_CHECKS, ids=lambda c: c.__name__)
async def test_redis(engine_settings: RedisSettings, check: RegisterCheck) -> None:
    await check(redis_register(engine_settings))


async def test_whole_suite(engine_settings: RedisSettings) -> None:
    await check_register(MemoryUserRegister)
    await check_register(redis_register(engine_settings))


async def test_connections_of_a_dead_node_expire(engine_settings: RedisSettings) -> None:
    def pair(clock: FakeClock) -> tuple[UserRegister, UserRegister]:
        return (
            RedisUserRegister(engine_on(engine_settings), clock=clock, owns_engine=True),
            RedisUserRegister(engine_on(engine_settings), clock=clock, owns_engine=True),
        )

    await check_register_expiry(pair)


def _pair(settings: RedisSettings, kind: type[RedisUserRegister]) -> RegisterPairFactory:
    def pair(clock: FakeClock) -> tuple[UserRegister, UserRegister]:
        made = [engine_on(settings) for _ in range(2)]
        return (
            kind(made[0], clock=clock, owns_engine=True),
            kind(made[1], clock=clock, owns_engine=True),
        )

    return pair


async def test_connections_of_a_node_found_gone_are_left_out_at_once(
    engine_settings: RedisSettings,
) -> None:
    await check_register_node_gone(_pair(engine_settings, RedisUserRegister))


class IgnoresNodeGone(RedisUserRegister):
    def node_gone(self, node_id: str) -> None:
        pass


async def test_node_gone_check_rejects_a_register_that_ignores_it(
    engine_settings: RedisSettings,
) -> None:
    with pytest.raises(AssertionError, match="after node_gone"):
        await check_register_node_gone(_pair(engine_settings, IgnoresNodeGone))


# --- the suite itself must catch broken registers ----------------------------------


class LastOnly(MemoryUserRegister):
    """Keeps one connection per user."""

    async def add(self, connection: UserConnection) -> None:
        self._users[connection.user] = {connection.client: connection}


class SharesItsList(MemoryUserRegister):
    """Hands out the list it keeps the connections in."""

    def __init__(self) -> None:
        super().__init__()
        self._lists: dict[str, list[UserConnection]] = {}

    async def add(self, connection: UserConnection) -> None:
        await super().add(connection)
        self._lists[connection.user] = await super().connections(connection.user)

    async def connections(self, user: str) -> list[UserConnection]:
        return self._lists.setdefault(user, [])


class RemovesByClientOnly(MemoryUserRegister):
    async def remove(self, user: str, client: str) -> None:
        for name in list(self._users):
            await super().remove(name, client)


class KeepsFirstNode(MemoryUserRegister):
    async def add(self, connection: UserConnection) -> None:
        if connection.client not in self._users.get(connection.user, {}):
            await super().add(connection)


@pytest.mark.parametrize("broken", [LastOnly, SharesItsList, RemovesByClientOnly, KeepsFirstNode])
async def test_suite_rejects_broken_register(broken: type[MemoryUserRegister]) -> None:
    with pytest.raises(AssertionError):
        await check_register(broken)
