"""Pytest fixtures around real redis-server processes (see tidings.testing.redis).

Servers are session-scoped (starting a cluster takes a second or two) and
flushed before every test that uses them; tests that stop or kill a server
use the function-scoped `redis_factory` instead, so nothing else sees it die.
Loaded for every test by `pytest_plugins` in tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tidings.engine.redis import RedisEngine, RedisSettings
from tidings.testing.redis import RedisCluster, RedisServer

__all__ = [
    "ENGINES",
    "engine_on",
    "engine_settings",
    "fresh_prefixes",
    "redis_cluster",
    "redis_cluster_process",
    "redis_cluster_with_replicas",
    "redis_factory",
    "redis_server",
    "redis_server_b",
    "redis_server_b_process",
    "redis_server_process",
    "redis_session_dir",
]

#: The topologies backends are tested on.
ENGINES = ("redis", "redis-2shards", "redis-cluster")


@pytest.fixture(scope="session")
def redis_session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("redis")


@pytest.fixture(scope="session")
def redis_server_process(redis_session_dir: Path) -> Iterator[RedisServer]:
    server = RedisServer(redis_session_dir / "a").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server_b_process(redis_session_dir: Path) -> Iterator[RedisServer]:
    server = RedisServer(redis_session_dir / "b").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster_process(redis_session_dir: Path) -> Iterator[RedisCluster]:
    cluster = RedisCluster(redis_session_dir / "cluster").start()
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_server(redis_server_process: RedisServer) -> RedisServer:
    """A running redis-server, empty at the start of the test."""
    redis_server_process.start().flush()
    return redis_server_process


@pytest.fixture
def redis_server_b(redis_server_b_process: RedisServer) -> RedisServer:
    """A second running redis-server (the other shard), empty at the start of the test."""
    redis_server_b_process.start().flush()
    return redis_server_b_process


@pytest.fixture
def redis_cluster(redis_cluster_process: RedisCluster) -> RedisCluster:
    """A 3-primary Redis Cluster, empty at the start of the test."""
    redis_cluster_process.flush()
    return redis_cluster_process


@pytest.fixture
def redis_cluster_with_replicas(tmp_path: Path) -> Iterator[RedisCluster]:
    """A private 3-primary cluster with a replica each (to fail over, kill, reshard)."""
    cluster = RedisCluster(tmp_path / "cluster", replicas=1).start()
    yield cluster
    for server in cluster.servers:
        with contextlib.suppress(Exception):
            server.kill()


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Start private servers (to kill, restart, replicate); all stopped after the test."""
    started: list[RedisServer] = []

    def start(**options: object) -> RedisServer:
        server = RedisServer(tmp_path / f"redis{len(started)}", **options).start()  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        with contextlib.suppress(Exception):
            server.kill()


#: Timeouts of test engines: generous, so that a loaded CI machine is not a Redis fault.
LOADED_MACHINE_TIMEOUTS = {"connect_timeout": 5.0, "command_timeout": 5.0}


def _unique_prefix() -> str:
    return "t" + uuid.uuid4().hex[:8]


@pytest.fixture(params=ENGINES)
def engine_settings(request: pytest.FixtureRequest) -> RedisSettings:
    """Settings of an empty engine in each topology (a fresh key prefix per test)."""
    prefix = _unique_prefix()
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return RedisSettings(addresses=[server.url], prefix=prefix, **LOADED_MACHINE_TIMEOUTS)
    if request.param == "redis-2shards":
        a: RedisServer = request.getfixturevalue("redis_server")
        b: RedisServer = request.getfixturevalue("redis_server_b")
        return RedisSettings(addresses=[a.url, b.url], prefix=prefix, **LOADED_MACHINE_TIMEOUTS)
    cluster: RedisCluster = request.getfixturevalue("redis_cluster")
    return RedisSettings(cluster_addresses=cluster.urls, prefix=prefix, **LOADED_MACHINE_TIMEOUTS)


def engine_on(settings: RedisSettings, prefix: str = "") -> RedisEngine:
    """A new engine on the servers of `settings`, under `prefix` (default: its own)."""
    return RedisEngine(
        RedisSettings(
            settings.addresses,
            settings.cluster_addresses,
            prefix=prefix or settings.prefix,
            connect_timeout=settings.connect_timeout,
            command_timeout=settings.command_timeout,
        )
    )


def fresh_prefixes(settings: RedisSettings) -> Iterator[str]:
    """`<prefix>-1`, `<prefix>-2`, ...: a key space of its own for each store a test makes."""
    return (f"{settings.prefix}-{n}" for n in itertools.count(1))
