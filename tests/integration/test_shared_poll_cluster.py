"""shared_poll_publish on a cluster: two `tidings serve` nodes on one redis-server.

As in Centrifugo, each node polls the back end for its own trackers, and a
published update goes through the broker to every node: an npm SDK client
tracking a key on node B gets what the API published through node A, once,
and never an update older than the one it has.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerProcess
from tests.core.test_shared_poll import Backend, running_backend
from tests.integration.cluster_support import cluster_settings, durable_redis, start_nodes
from tests.integration.support.api import api_call
from tests.integration.support.node_sdk import SdkClient, sdk_clients
from tidings.core.shared_poll import sign
from tidings.testing.redis import RedisServer

SECRET = "cluster-shared-poll-secret"
SCRIPT = Path(__file__).parent / "support" / "shared_poll_client.cjs"


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    async with running_backend() as state:
        yield state


@pytest.fixture
def nodes(
    server_factory: Callable[..., ServerProcess],
    redis_factory: Callable[..., RedisServer],
    backend: Backend,
) -> list[ServerProcess]:
    ns = {
        "subscription_type": "shared_poll",
        "shared_poll_endpoint": backend.url,
        "shared_poll_refresh_interval": "1h",  # updates come by shared_poll_publish only
        "shared_poll_mode": "versioned",
        "shared_poll_publish_enabled": True,
        "allow_subscribe_for_client": True,
    }
    settings = cluster_settings(
        [durable_redis(redis_factory).url],
        shared_poll_hmac_secret_key=SECRET,
        namespaces={"sp": ns},
    )
    return start_nodes(server_factory, settings, count=2)


async def publish(node: ServerProcess, version: int, data: Any) -> None:
    body = {"channel": "sp:quotes", "key": "AAPL", "version": version, "data": data}
    assert await api_call(node, "shared_poll_publish", body) == {}


async def test_published_update_reaches_a_tracker_on_another_node(
    nodes: list[ServerProcess], backend: Backend
) -> None:
    a, b = nodes
    async with sdk_clients(b, SCRIPT) as start:
        client: SdkClient = await start("bob", "sp:quotes")
        await client.next("subscribed")
        now = int(time.time())
        sig = sign(SECRET, "bob", "sp:quotes", ["AAPL"], iat=now, expiry=now + 300)
        await client.send(f"track {sig} AAPL")
        # The track reaches node B before the first publish: wait for its refresh answer
        # by publishing until the update arrives (a publish before the track is not kept).
        for version in range(1, 50):
            await publish(a, version, {"price": version})
            try:
                update = await client.next("update", within=0.3)
            except TimeoutError:
                continue
            break
        else:
            raise AssertionError("no published update reached node B's tracker")
        assert update["key"] == "AAPL" and update["data"] == {"price": version}
        await publish(a, version, {"price": -1})  # not newer: dropped on every node
        await publish(a, version + 5, {"price": 99})
        assert await client.next("update") == {
            "key": "AAPL",
            "data": {"price": 99},
            "removed": False,
            "version": version + 5,
        }
