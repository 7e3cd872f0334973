"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cent import AsyncClient

from tests.conftest import ServerProcess
from tests.integration.cluster_support import cluster_settings, durable_redis, start_nodes
from tests.integration.support.queue import QueueProcess, start_queue
from tests.integration.support.sdk import TIMEOUT
from tidings.testing.redis import RedisServer

if TYPE_CHECKING:
    from playwright.async_api import Browser


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


@pytest.fixture
def chromium_args() -> list[str]:
    """Command-line flags of the `browser` fixture's Chromium (a module may override them)."""
    from tests.integration.support.browser import CHROMIUM_ARGS  # Playwright: browser tests only

    return CHROMIUM_ARGS


@pytest.fixture
async def browser(chromium_args: list[str]) -> AsyncIterator[Browser]:
    """A headless Chromium (Debian's), closed after the test."""
    from tests.integration.support.browser import chromium

    async with chromium(chromium_args) as instance:
        yield instance
