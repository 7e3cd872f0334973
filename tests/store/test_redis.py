"""The Redis history store's durability: Redis settings, WAIT for replicas, restarts.

Real redis-server processes: a primary with a replica (`replicaof`), and
servers with and without AOF.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import pytest
from msgspec import Raw

from tidings.engine.redis import RedisEngine, RedisSettings
from tidings.protocol.centrifuge.messages import ClientInfo, Publication
from tidings.store.base import Position, StoreWriteError, UnrecoverablePosition
from tidings.store.redis import RedisHistoryStore
from tidings.store.redis_streams import RedisStreams, StreamKeys
from tidings.testing.redis import RedisCluster, RedisServer


def pub(n: int) -> Publication:
    return Publication(data=Raw(f'{{"n":{n}}}'.encode()))


@pytest.fixture
async def engines() -> AsyncIterator[Callable[..., RedisEngine]]:
    made: list[RedisEngine] = []

    def make(*urls: str, cluster: bool = False, command_timeout: float = 1.0) -> RedisEngine:
        settings = RedisSettings(
            [] if cluster else list(urls),
            list(urls) if cluster else [],
            command_timeout=command_timeout,
        )
        engine = RedisEngine(settings)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        await engine.close()


@pytest.mark.parametrize(
    ("appendonly", "appendfsync", "problem"),
    [
        (False, "always", "appendonly is 'no'"),
        (True, "everysec", "appendfsync is 'everysec'"),
        (True, "always", ""),
    ],
)
async def test_durability_reads_the_redis_settings(
    redis_factory: Callable[..., RedisServer],
    engines: Callable[..., RedisEngine],
    appendonly: bool,
    appendfsync: str,
    problem: str,
) -> None:
    server = redis_factory(appendonly=appendonly, appendfsync=appendfsync)
    store = RedisHistoryStore(RedisStreams(engines(server.url)))
    durability = await store.durability()
    assert durability.settings == (("yes" if appendonly else "no", appendfsync),)
    assert durability.safe is (not problem)
    assert problem in durability.problem
    if not problem:
        assert durability.problem == ""


async def test_durability_of_every_shard(
    redis_factory: Callable[..., RedisServer], engines: Callable[..., RedisEngine]
) -> None:
    safe = redis_factory(appendonly=True, appendfsync="always")
    unsafe = redis_factory()
    durability = await RedisHistoryStore(RedisStreams(engines(safe.url, unsafe.url))).durability()
    assert not durability.safe
    assert "appendonly" in durability.problem


async def test_durability_of_a_cluster(
    redis_cluster: RedisCluster, engines: Callable[..., RedisEngine]
) -> None:
    store = RedisHistoryStore(RedisStreams(engines(*redis_cluster.urls, cluster=True)))
    durability = await store.durability()
    assert len(durability.settings) == 3
    assert not durability.safe


async def test_aof_always_survives_kill_9(
    redis_factory: Callable[..., RedisServer], engines: Callable[..., RedisEngine]
) -> None:
    server = redis_factory(appendonly=True, appendfsync="always")
    store = RedisHistoryStore(RedisStreams(engines(server.url)))
    positions = [await store.append("d", pub(n), 100, 3600) for n in range(3)]
    await store.ack("u1", "d", positions[1], "c1")
    server.restart()  # SIGKILL, then start on the same port and directory
    store = RedisHistoryStore(RedisStreams(engines(server.url)))
    pubs, top = await store.read("d", Position(0, positions[0].epoch))
    assert [p.offset for p in pubs] == [1, 2, 3]
    assert top == positions[-1]
    ack = await store.acked("u1", "d")
    assert ack is not None and ack.offset == 2


def wait_for_replica(primary: RedisServer) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        info = primary.cli("info", "replication")
        if "connected_slaves:1" in info and "state=online" in info:
            return
        time.sleep(0.05)
    raise AssertionError(f"the replica did not come online:\n{info}")


async def test_wait_for_a_replica(
    redis_factory: Callable[..., RedisServer], engines: Callable[..., RedisEngine]
) -> None:
    primary = redis_factory()
    replica = redis_factory(replica_of=primary)
    wait_for_replica(primary)
    # generous limits: a loaded machine may be slow, and this is not a timing test
    streams = RedisStreams(
        engines(primary.url, command_timeout=5.0), wait_replicas=1, wait_timeout=4.0
    )
    store = RedisHistoryStore(streams)
    for n in range(3):
        position = await store.append("w", pub(n), 100, 3600)
        # WAIT answered: the replica has it already, with no further waiting.
        keys = StreamKeys(streams.engine.prefix, "w")
        assert replica.cli("hget", keys.meta, "o") == str(position.offset)
        assert replica.cli("llen", keys.list) == str(n + 1)

    replica.kill()
    streams.wait_timeout = 0.2
    with pytest.raises(StoreWriteError, match="only 0 of 1 Redis replicas"):
        await store.append("w", pub(9), 100, 3600)


def test_wait_must_fit_in_the_command_timeout() -> None:
    engine = RedisEngine(RedisSettings(["redis://127.0.0.1:1"], command_timeout=1.0))
    with pytest.raises(ValueError, match="shorter than the Redis command timeout"):
        RedisStreams(engine, wait_replicas=1, wait_timeout=1.0)


async def test_wait_keeps_idempotency(
    redis_factory: Callable[..., RedisServer], engines: Callable[..., RedisEngine]
) -> None:
    primary = redis_factory()
    redis_factory(replica_of=primary)
    wait_for_replica(primary)
    streams = RedisStreams(
        engines(primary.url, command_timeout=5.0), wait_replicas=1, wait_timeout=4.0
    )
    store = RedisHistoryStore(streams)
    first = await store.append("k", pub(1), 100, 3600, idempotency_key="x")
    again = await store.append("k", pub(2), 100, 3600, idempotency_key="x")
    assert again == first


async def test_corrupt_entries_are_never_a_silent_gap(
    redis_server: RedisServer, engines: Callable[..., RedisEngine]
) -> None:
    streams = RedisStreams(engines(redis_server.url))
    store = RedisHistoryStore(streams)
    positions = [await store.append("c", pub(n), 100, 3600) for n in range(3)]
    keys = StreamKeys(streams.engine.prefix, "c")
    redis_server.cli("lset", keys.list, "1", "garbage without a time")  # offset 2
    pubs, _ = await store.read("c")
    assert [p.offset for p in pubs] == [1, 3], "the history API skips what it cannot read"
    with pytest.raises(UnrecoverablePosition, match="offset 2"):
        await store.read("c", Position(0, positions[0].epoch))
    later, _ = await store.read("c", Position(2, positions[0].epoch))
    assert [p.offset for p in later] == [3]
    redis_server.cli("lset", keys.list, "-1", "garbage")  # the oldest, checked for expiry
    await store.append("c", pub(3), 100, 3600)
    pubs, _ = await store.read("c")
    assert [p.offset for p in pubs] == [3, 4], "an unreadable oldest entry counts as expired"


async def test_empty_raw_payloads_are_stored_as_omitted(
    redis_server: RedisServer, engines: Callable[..., RedisEngine]
) -> None:
    """A `Raw()` that is not the shared EMPTY object must not produce invalid JSON."""
    store = RedisHistoryStore(RedisStreams(engines(redis_server.url)))
    info = ClientInfo(user="u", client="c", conn_info=Raw(), chan_info=Raw(b'{"a":1}'))
    await store.append("e", Publication(data=Raw(), info=info), 10, 60)
    (got,), _ = await store.read("e")
    assert bytes(got.data) == b"" and got.info is not None
    assert bytes(got.info.chan_info) == b'{"a":1}' and bytes(got.info.conn_info) == b""


async def test_a_redis_that_forgot_everything_gives_a_new_epoch(
    redis_factory: Callable[..., RedisServer], engines: Callable[..., RedisEngine]
) -> None:
    """Without persistence a restart loses the streams: positions from before are refused."""
    server = redis_factory(appendonly=False)
    store = RedisHistoryStore(RedisStreams(engines(server.url)))
    before = [await store.append("v", pub(n), 100, 3600) for n in range(3)][-1]
    server.restart()
    store = RedisHistoryStore(RedisStreams(engines(server.url)))
    with pytest.raises(UnrecoverablePosition, match="epoch"):
        await store.read("v", before)
    after = await store.append("v", pub(9), 100, 3600)
    assert after.offset == 1 and after.epoch != before.epoch
