"""Tags filters through the official centrifuge npm SDK (`tagsFilter`, in Node), JSON and
Protobuf, against `tidings serve` and, as a differential check, Centrifugo v6.9.1 (built
here) configured alike: the same publications reach the same filtered subscriber, live
and recovered, and an invalid filter is refused with the same code.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from tests.conftest import SECRET, ServerProcess, free_port
from tests.integration.cluster_support import cluster_settings, start_nodes
from tests.integration.support.node_sdk import SDK, SdkClient
from tests.integration.test_proxy_centrifugo import CENTRIFUGO, _wait_port
from tidings.testing.redis import RedisServer

SCRIPT = Path(__file__).parent / "support" / "tags_filter_client.cjs"

pytestmark = [pytest.mark.timeout(120)]

NAMESPACE: dict[str, Any] = {
    "allow_subscribe_for_client": True,
    "allow_tags_filter": True,
    "history_size": 50,
    "history_ttl": "300s",
    "force_recovery": True,
}
# BTC above 100, or anything marked urgent.
FILTER = {
    "op": "or",
    "nodes": [
        {
            "op": "and",
            "nodes": [
                {"key": "ticker", "cmp": "eq", "val": "BTC"},
                {"key": "price", "cmp": "gt", "val": "100"},
            ],
        },
        {"key": "urgent", "cmp": "ex"},
    ],
}
INVALID = {"op": "not", "nodes": [{"key": "a", "cmp": "ex"}, {"key": "b", "cmp": "ex"}]}
LIVE = [
    ({"n": 1}, {"ticker": "BTC", "price": "150.5"}),
    ({"n": 2}, {"ticker": "ETH", "price": "150"}),
    ({"n": 3}, {"ticker": "BTC", "price": "99.99"}),
    ({"n": 4}, {"ticker": "SOL", "urgent": ""}),
    ({"n": 5}, {}),
    ({"n": 6}, {"ticker": "BTC", "price": "abc"}),
    ({"n": "live-end"}, {"urgent": "1"}),
]
MISSED = [
    ({"n": 7}, {"ticker": "ETH"}),
    ({"n": 8}, {"ticker": "BTC", "price": "1e3"}),  # no exponents: not a number
    ({"n": 9}, {"ticker": "BTC", "price": "100.0001"}),
    ({"n": 10}, {"ticker": "BTC"}),
]
AFTER = [({"n": 11}, {"ticker": "XRP"}), ({"n": "end"}, {"urgent": "1"})]
EXPECTED = [{"n": 1}, {"n": 4}, {"n": "live-end"}, {"n": 9}, {"n": "end"}]


@dataclass
class Target:
    ws_url: str
    api_url: str
    api_key: str

    def token(self, user: str) -> str:
        return jwt.encode({"sub": user}, SECRET, algorithm="HS256")


@pytest.fixture
def tidings(server_factory: Callable[..., ServerProcess]) -> Target:
    server = server_factory({"namespaces": {"tf": NAMESPACE}})
    return Target(server.ws_url, server.api_url, server.api_key)


@pytest.fixture
def centrifugo(tmp_path: Path) -> Iterator[Target]:
    assert CENTRIFUGO.exists(), "no Centrifugo v6: run scripts/setup-test-deps.sh"
    port = free_port()
    config = {
        "http_server": {"address": "127.0.0.1", "port": port},
        "http_api": {"key": "k"},
        "client": {"token": {"hmac_secret_key": SECRET}},
        "log": {"level": "error"},
        "channel": {"namespaces": [{"name": "tf", **NAMESPACE}]},
    }
    path = tmp_path / "centrifugo-tags.json"
    path.write_text(json.dumps(config))
    log = (tmp_path / "centrifugo-tags.log").open("wb")
    proc = subprocess.Popen([str(CENTRIFUGO), "-c", str(path)], stdout=log, stderr=log)
    try:
        _wait_port(port, proc)
        yield Target(
            f"ws://127.0.0.1:{port}/connection/websocket", f"http://127.0.0.1:{port}/api", "k"
        )
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
async def node_clients() -> AsyncIterator[Callable[..., Any]]:
    procs: list[asyncio.subprocess.Process] = []

    async def start(target: Target, user: str, tree: dict[str, Any], fmt: str) -> SdkClient:
        proc = await asyncio.create_subprocess_exec(
            "node",
            "--experimental-websocket",
            "--no-warnings",
            str(SCRIPT),
            str(SDK),
            target.ws_url,
            target.token(user),
            "tf:prices",
            json.dumps(tree),
            fmt,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        procs.append(proc)
        return SdkClient(proc)

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def publish_all(target: Target, pubs: list[tuple[dict[str, Any], dict[str, str]]]) -> None:
    async with aiohttp.ClientSession() as session:
        for data, tags in pubs:
            body: dict[str, Any] = {"channel": "tf:prices", "data": data}
            if tags:
                body["tags"] = tags
            async with session.post(
                f"{target.api_url}/publish", json=body, headers={"X-API-Key": target.api_key}
            ) as resp:
                reply = await resp.json()
                assert "error" not in reply, reply


async def received_until(client: SdkClient, last: Any) -> list[Any]:
    got = []
    while True:
        pub = await client.next("publication")
        got.append(pub["data"])
        if pub["data"] == last:
            return got


async def scenario(target: Target, start: Callable[..., Any], fmt: str) -> dict[str, Any]:
    client: SdkClient = await start(target, "alice", FILTER, fmt)
    refused: SdkClient = await start(target, "bob", INVALID, fmt)
    await client.next("subscribed")
    refusal = await refused.next("unsubscribed")  # a non-temporary error ends it
    got = []
    await publish_all(target, LIVE)
    got += await received_until(client, {"n": "live-end"})
    await client.send("disconnect")
    await client.next("disconnected")
    await publish_all(target, MISSED)
    await client.send("connect")
    resubscribed = await client.next("subscribed")
    await publish_all(target, AFTER)
    got += await received_until(client, {"n": "end"})
    return {
        "received": got,
        "refused_with": refusal["code"],
        "recovered": resubscribed["recovered"],
        "was_recovering": resubscribed["wasRecovering"],
    }


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
async def test_sdk_tags_filter_matches_centrifugo(
    tidings: Target, centrifugo: Target, node_clients: Callable[..., Any], fmt: str
) -> None:
    ours = await scenario(tidings, node_clients, fmt)
    assert ours == {
        "received": EXPECTED,
        "refused_with": 107,
        "recovered": True,
        "was_recovering": True,
    }
    theirs = await scenario(centrifugo, node_clients, fmt)
    assert ours == theirs


async def test_sdk_tags_filter_on_a_cluster(
    server_factory: Callable[..., ServerProcess],
    redis_server: RedisServer,
    node_clients: Callable[..., Any],
) -> None:
    """Subscribed on node A, published on node B (Redis engine): tags travel with the
    publication, live and in the Redis history that recovery reads."""
    settings = cluster_settings(
        [redis_server.url], namespaces={"tf": NAMESPACE}, durable_allow_volatile=True
    )
    a, b = start_nodes(server_factory, settings, count=2)
    across = Target(a.ws_url, b.api_url, b.api_key)
    ours = await scenario(across, node_clients, "json")
    assert ours["received"] == EXPECTED and ours["recovered"] is True
