"""Three `tidings serve` processes on one real redis-server (or a Redis Cluster)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from tests.conftest import OPEN_CHANNEL, ServerProcess
from tests.integration.support.api import api_call
from tidings.testing.redis import RedisServer

#: Fast heartbeats so that a node's death shows in `info` within a couple of seconds.
HEARTBEAT = {"node_heartbeat_interval": 0.2, "node_heartbeat_timeout": 1.5}


def cluster_settings(
    redis_urls: list[str], *, cluster: bool = False, **extra: Any
) -> dict[str, Any]:
    key = "redis_cluster_address" if cluster else "redis_address"
    return {
        "engine": "redis",
        key: redis_urls,
        "redis_prefix": "t" + uuid.uuid4().hex[:8],
        "redis_connect_timeout": 0.5,
        "redis_command_timeout": 0.5,
        "channel": OPEN_CHANNEL,
        "namespaces": {"d": {**OPEN_CHANNEL, "durable": True, "history_size": 1000}},
        **HEARTBEAT,
        **extra,
    }


def start_nodes(
    server_factory: Callable[..., ServerProcess], settings: dict[str, Any], count: int = 3
) -> list[ServerProcess]:
    return [server_factory({**settings, "name": f"node-{n}"}) for n in range(count)]


def durable_redis(redis_factory: Callable[..., RedisServer]) -> RedisServer:
    """A private redis-server that keeps every acknowledged write (AOF, fsync always)."""
    return redis_factory(appendonly=True, appendfsync="always")


async def wait_for(check: Callable[[], Any], what: str, within: float = 10.0) -> Any:
    """Poll the coroutine function `check` until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        found = await check()
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last: {found!r}")
        await asyncio.sleep(0.1)


async def node_names(server: ServerProcess) -> list[str]:
    info = await api_call(server, "info", {})
    return sorted(node["name"] for node in info["nodes"])
