"""The Redis engine: settings, channel placement (shards, cluster slots), addresses."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from msgspec import Raw
from redis.crc import key_slot

from tidings.engine.redis import (
    EngineUnavailable,
    RedisEngine,
    RedisSettings,
    channel_tag,
    jump_hash,
    shard_of,
)
from tidings.presence.redis_entries import ExpiringEntries
from tidings.protocol.centrifuge.messages import Publication
from tidings.store.redis import RedisHistoryStore
from tidings.store.redis_streams import RedisStreams, StreamKeys
from tidings.testing.redis import RedisCluster, RedisServer, free_port

#: Names a client may choose that are awkward for Redis hash tags.
AWKWARD = ["plain", "a}b", "{x}", "}", "{", "x{}y", "chat:{room}:1", "ünï €", "a" * 300]


def test_settings_need_one_topology() -> None:
    with pytest.raises(ValueError, match="either"):
        RedisEngine(RedisSettings())
    with pytest.raises(ValueError, match="either"):
        RedisEngine(RedisSettings(["redis://a"], ["redis://b"]))
    with pytest.raises(ValueError, match="braces"):
        RedisEngine(RedisSettings(["redis://a"], prefix="x{y}"))


@pytest.mark.parametrize("name", [*AWKWARD, ""])
def test_every_key_of_a_channel_is_in_one_slot(name: str) -> None:
    keys = StreamKeys("tidings", name)
    names = [keys.meta, keys.list, keys.idem, keys.acked, keys.epochs, keys.stamps, keys.pubsub]
    assert len({key_slot(k.encode()) for k in names}) == 1, names


def test_tags_of_different_channels_differ() -> None:
    tags = [channel_tag(name) for name in [*AWKWARD, ""]]
    assert len(set(tags)) == len(tags)


def test_jump_hash_spreads_and_moves_little() -> None:
    names = [f"channel-{n}" for n in range(3000)]
    two = [shard_of(name, 2) for name in names]
    three = [shard_of(name, 3) for name in names]
    assert all(0 <= s < 3 for s in three)
    assert 1300 < two.count(0) < 1700, "two shards are not evenly used"
    moved = sum(a != b for a, b in zip(two, three, strict=True))
    # a third shard takes about a third of the channels, all from the other two
    assert 800 < moved < 1200
    assert all(b == 2 for a, b in zip(two, three, strict=True) if a != b)
    assert shard_of("x", 1) == 0 and jump_hash(12345, 1) == 0


async def test_awkward_channel_names_on_a_cluster(redis_cluster: RedisCluster) -> None:
    engine = RedisEngine(RedisSettings(cluster_addresses=redis_cluster.urls, prefix="awk"))
    store = RedisHistoryStore(RedisStreams(engine), owns_engine=True)
    try:
        for name in AWKWARD:
            position = await store.append(name, Publication(data=Raw(b"1")), 10, 60)
            pubs, top = await store.read(name)
            assert top == position and [bytes(p.data) for p in pubs] == [b"1"], name
    finally:
        await store.close()


async def test_unix_socket_address(redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory(unix_socket=True)
    engine = RedisEngine(RedisSettings([server.unix_url]))
    entries = ExpiringEntries(engine, "t", 60)
    try:
        await engine.check()
        await entries.add("room", "c1", b"v", "u1", "node-a")
        assert await entries.get("room") == [("c1", b"v", "u1")]
    finally:
        await entries.close()
        await engine.close()


async def test_unreachable_engines_fail_fast() -> None:
    for settings in (
        RedisSettings([f"redis://127.0.0.1:{free_port()}"]),
        RedisSettings(cluster_addresses=[f"redis://127.0.0.1:{free_port()}"]),
        RedisSettings(["unix:///nonexistent/redis.sock"]),
    ):
        engine = RedisEngine(settings)
        with pytest.raises(EngineUnavailable, match="unavailable"):
            await engine.check()
        with pytest.raises(EngineUnavailable, match="unavailable"):
            await RedisStreams(engine).read("x")
        await engine.close()
