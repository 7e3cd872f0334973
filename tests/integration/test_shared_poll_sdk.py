"""Shared poll with the official centrifuge npm SDK (5.8, in Node) against `tidings serve`.

Two SDK clients track a key with signatures made as Centrifugo documents
them; a real aiohttp back end answers the polls; changes reach both through
one poll per interval.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerProcess
from tests.core.test_shared_poll import Backend, running_backend
from tests.integration.support.node_sdk import SdkClient, sdk_clients
from tidings.core.shared_poll import sign

SECRET = "sdk-shared-poll-secret"
SCRIPT = Path(__file__).parent / "support" / "shared_poll_client.cjs"


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    async with running_backend() as state:
        yield state


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess], backend: Backend) -> ServerProcess:
    ns = {
        "subscription_type": "shared_poll",
        "shared_poll_endpoint": backend.url,
        "shared_poll_refresh_interval": "50ms",
        "allow_subscribe_for_client": True,
    }
    short = {**ns, "shared_poll_track_expired_extra_delay": "100ms"}
    namespaces = {"sp": ns, "short": short}
    return server_factory({"shared_poll_hmac_secret_key": SECRET, "namespaces": namespaces})


@pytest.fixture
async def sdk(server: ServerProcess) -> AsyncIterator[Callable[[str, str], Any]]:
    async with sdk_clients(server, SCRIPT) as start:
        yield start


async def test_sdk_clients_share_one_poll(
    server: ServerProcess, backend: Backend, sdk: Callable[[str, str], Any]
) -> None:
    backend.values = {"AAPL": (1, {"price": 100})}
    clients: list[SdkClient] = []
    for user in ("alice", "bob"):
        client: SdkClient = await sdk(user, "sp:quotes")
        await client.next("subscribed")
        now = int(time.time())
        sig = sign(SECRET, user, "sp:quotes", ["AAPL"], iat=now, expiry=now + 300)
        await client.send(f"track {sig} AAPL")
        first = await client.next("update")
        assert first == {"key": "AAPL", "data": {"price": 100}, "removed": False, "version": 1}
        clients.append(client)
    backend.values["AAPL"] = (2, {"price": 101})
    for client in clients:
        assert (await client.next("update"))["data"] == {"price": 101}
    # Each request of the server named the key once, whatever the number of trackers.
    assert backend.calls and all(len(c["items"]) == 1 for c in backend.calls)
    assert {c["channel"] for c in backend.calls} == {"sp:quotes"}
    backend.values["AAPL"] = (3, None)
    for client in clients:
        assert (await client.next("update"))["removed"] is True


async def test_sdk_refreshes_signatures_at_the_ttl_of_the_track_reply(
    server: ServerProcess, backend: Backend, sdk: Callable[[str, str], Any]
) -> None:
    """A track reply says when its signature runs out (`expires`, `ttl`); the SDK asks
    for a fresh one then and tracks again, so that the key outlives its first signature
    (the server drops tracks 100 ms after their signature expired here)."""
    backend.values = {"AAPL": (1, {"price": 100})}
    client: SdkClient = await sdk("alice", "short:quotes")
    await client.next("subscribed")
    now = int(time.time())
    expiry = now + 2
    sig = sign(SECRET, "alice", "short:quotes", ["AAPL"], iat=now, expiry=expiry)
    await client.send(f"track {sig} AAPL")
    assert (await client.next("update"))["version"] == 1
    wanted = await client.next("signature_wanted")
    assert wanted == {"keys": ["AAPL"]}
    now = int(time.time())
    fresh = sign(SECRET, "alice", "short:quotes", ["AAPL"], iat=now, expiry=now + 300)
    await client.send(f"signature {fresh} AAPL")
    # Past the first signature's expiry and the extra delay.
    await asyncio.sleep(max(0.0, expiry + 1 - time.time()))
    backend.values["AAPL"] = (2, {"price": 101})
    update = await client.next("update")
    assert update["data"] == {"price": 101}, client.events
