"""The per-turn script batcher: RESP packing, one caller's error, lost scripts, big bursts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import ResponseError

from tidings.engine.redis import LuaScript, RedisEngine, RedisSettings
from tidings.engine.redis_batch import MAX_PIPELINE, pack_command
from tidings.testing.redis import RedisServer

ECHO = LuaScript("return ARGV[1]")
FAIL_ON_X = LuaScript("if ARGV[1] == 'x' then return redis.error_reply('no x') end return ARGV[1]")


@pytest.mark.parametrize(
    "args",
    [
        [b"EVALSHA", "abc", 2, "k1", "k2", b"\x00\xff", 0, -5, 1.5, "ünï"],
        [b"PING"],
        [b"SET", b"", ""],
    ],
)
def test_pack_command_is_resp(args: list[object]) -> None:
    expected = b"".join(Connection().pack_command(*args))  # redis-py's own packer
    assert pack_command(list(args)) == expected


@pytest.fixture
async def engine(redis_server: RedisServer) -> AsyncIterator[RedisEngine]:
    engine = RedisEngine(RedisSettings([redis_server.url], prefix="batch"))
    yield engine
    await engine.close()


async def test_one_failing_call_fails_alone(engine: RedisEngine) -> None:
    results = await asyncio.gather(
        *(engine.run("c", FAIL_ON_X, ["k"], [arg]) for arg in ["a", "x", "b"]),
        return_exceptions=True,
    )
    assert results[0] == b"a" and results[2] == b"b"
    assert isinstance(results[1], ResponseError) and "no x" in str(results[1])


async def test_scripts_are_loaded_again_after_a_flush(
    engine: RedisEngine, redis_server: RedisServer
) -> None:
    assert await engine.run("c", ECHO, ["k"], ["one"]) == b"one"
    redis_server.cli("script", "flush")
    assert await engine.run("c", ECHO, ["k"], ["two"]) == b"two"


async def test_a_burst_bigger_than_one_pipeline(engine: RedisEngine) -> None:
    count = MAX_PIPELINE * 2 + 7
    results = await asyncio.gather(*(engine.run("c", ECHO, ["k"], [n]) for n in range(count)))
    assert results == [str(n).encode() for n in range(count)]


INCR = LuaScript("return redis.call('INCR', KEYS[1])")


async def test_a_burst_bigger_than_one_pipeline_runs_in_call_order(engine: RedisEngine) -> None:
    # A sequential API batch relies on this: what one turn issues is applied in call order.
    count = MAX_PIPELINE * 3 + 5
    results = await asyncio.gather(*(engine.run("c", INCR, ["batch:n"], []) for _ in range(count)))
    assert results == list(range(1, count + 1))
