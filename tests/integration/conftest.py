"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from cent import AsyncClient

from tests.conftest import ServerProcess
from tests.integration.cluster_support import cluster_settings, durable_redis, start_nodes
from tests.integration.support.queue import QueueProcess, start_queue
from tests.integration.support.sdk import TIMEOUT
from tidings.testing.redis import RedisServer


@pytest.fixture
async def api(server: ServerProcess) -> AsyncIterator[AsyncClient]:
    """A `cent` client of the server API of `server`."""
    client = AsyncClient(server.api_url, server.api_key, timeout=TIMEOUT)
    yield client
    await client.close()


@pytest.fixture
def redis_nodes(
    server_factory: Callable[..., ServerProcess], redis_factory: Callable[..., RedisServer]
) -> list[ServerProcess]:
    """Three `tidings serve` nodes (node-0, 1, 2) on a private durable redis-server."""
    return start_nodes(server_factory, cluster_settings([durable_redis(redis_factory).url]))


@pytest.fixture
def queue_flags() -> list[str]:
    """Command-line flags of the `queue` fixture (a module overrides this to set some)."""
    return []


@pytest.fixture
def queue(tmp_path: Path, queue_flags: list[str]) -> Iterator[QueueProcess]:
    """A `tidings queue` process on free ports, killed after the test."""
    process = start_queue(tmp_path, *queue_flags)
    yield process
    process.kill()
