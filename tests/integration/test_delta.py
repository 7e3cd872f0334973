"""Fossil delta compression, received by the official npm SDK (Node) over WebSocket.

The SDK subscribes with `delta: "fossil"` and applies each delta to its
previous publication; the data it reconstructs must equal what was
published, in order, and most publications must have travelled as deltas.
JSON and Protobuf builds; a server-side disconnect in the middle resumes
with a full publication (recovery), then deltas again.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import OPEN_CHANNEL, ServerProcess
from tests.integration.cluster_support import cluster_settings, start_nodes
from tests.integration.support.api import api_body as api
from tests.integration.support.ws import connected_ws, send_command
from tidings.testing.redis import RedisServer

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "build/npm/node_modules/centrifuge/build"
CLIENT = Path(__file__).parent / "support/delta_client.js"
TIMEOUT = 30.0
DOCS = {**OPEN_CHANNEL, "allowed_delta_types": ["fossil"], "delta_publish": True}
FLAGGED = {**OPEN_CHANNEL, "allowed_delta_types": ["fossil"]}

pytestmark = [pytest.mark.timeout(120)]


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory({"namespaces": {"docs": DOCS, "flagged": FLAGGED, "plain": OPEN_CHANNEL}})


def documents(seed: int, count: int) -> list[dict[str, Any]]:
    """A document of ~1 KB, then versions of it that each change a few fields."""
    rng = random.Random(seed)
    doc: dict[str, Any] = {
        "seq": 0,
        "price": 10.0,
        "name": "Ünïcödé widget",
        "rows": [{"id": i, "qty": rng.randint(0, 3)} for i in range(30)],
    }
    out = []
    for n in range(count):
        doc = json.loads(json.dumps(doc))
        doc["seq"], doc["price"] = n, round(rng.uniform(1, 100), 2)
        doc["rows"][rng.randrange(30)]["qty"] = rng.randint(0, 9)
        out.append(doc)
    return out


class SdkClient:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def event(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), TIMEOUT)
        assert line, "SDK client exited"
        value: dict[str, Any] = json.loads(line)
        assert "error" not in value and "timeout" not in value, value
        return value


@pytest.fixture
async def clients() -> AsyncIterator[list[SdkClient]]:
    """The SDK clients a test starts: killed (if still running) and reaped after it."""
    started: list[SdkClient] = []
    yield started
    for client in started:
        if client.proc.returncode is None:
            client.proc.kill()
        await client.proc.wait()


async def start_client(
    clients: list[SdkClient], server: ServerProcess, fmt: str, channel: str, count: int
) -> SdkClient:
    node = shutil.which("node")
    assert node, "node is needed (scripts/setup-test-deps.sh)"
    assert SDK.exists(), "centrifuge npm SDK missing: run scripts/vendor-sdk.sh"
    proc = await asyncio.create_subprocess_exec(
        node,
        str(CLIENT),
        str(SDK),
        fmt,
        server.ws_url,
        server.token("reader"),
        channel,
        str(count),
        stdout=asyncio.subprocess.PIPE,
    )
    clients.append(SdkClient(proc))
    return clients[-1]


async def publish(server: ServerProcess, channel: str, data: Any, **extra: Any) -> None:
    await api(server, "publish", {"channel": channel, "data": data, **extra})


async def check_every_other_flagged(
    clients: list[SdkClient],
    subscribed_to: ServerProcess,
    published_to: ServerProcess,
    encoding: str,
    seed: int,
) -> None:
    """Six publications on `flagged:x`, every other one `delta: true`: three arrive as deltas."""
    docs = documents(seed, 6)
    client = await start_client(clients, subscribed_to, encoding, "flagged:x", len(docs))
    await client.event()
    for i, doc in enumerate(docs):
        await publish(published_to, "flagged:x", doc, delta=i % 2 == 1)
    got = [(await client.event())["pub"] for _ in docs]
    assert got == docs
    stats = (await client.event())["stats"]
    assert stats["numDeltaPayloads"] == 3 and stats["numFullPayloads"] == 3, stats


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
async def test_sdk_reconstructs_a_stream_of_deltas(
    server: ServerProcess, clients: list[SdkClient], fmt: str
) -> None:
    docs = documents(3, 40)
    client = await start_client(clients, server, fmt, "docs:book", len(docs))
    assert await client.event() == {"subscribed": {"wasRecovering": False, "recovered": False}}
    for doc in docs:
        await publish(server, "docs:book", doc)
    got = [(await client.event())["pub"] for _ in docs]
    assert got == docs
    stats = (await client.event())["stats"]
    assert stats["numFullPayloads"] == 1 and stats["numDeltaPayloads"] == len(docs) - 1, stats
    assert stats["bytesReceived"] * 3 < stats["bytesDecoded"], stats
    assert await client.proc.wait() == 0


async def test_recovery_restarts_the_chain_with_a_full_publication(
    server: ServerProcess, clients: list[SdkClient]
) -> None:
    docs = documents(4, 12)
    client = await start_client(clients, server, "json", "docs:book", len(docs))
    await client.event()
    for doc in docs[:4]:
        await publish(server, "docs:book", doc)
    got = [(await client.event())["pub"] for _ in range(4)]
    await api(server, "disconnect", {"user": "reader", "disconnect": {"code": 3001, "reason": ""}})
    for doc in docs[4:8]:  # missed, recovered on reconnect
        await publish(server, "docs:book", doc)
    event = await client.event()
    assert event["subscribed"] == {"wasRecovering": True, "recovered": True}
    got += [(await client.event())["pub"] for _ in range(4)]
    for doc in docs[8:]:
        await publish(server, "docs:book", doc)
    got += [(await client.event())["pub"] for _ in range(4)]
    assert got == docs
    stats = (await client.event())["stats"]
    # Full: the first, the recovered ones, the first live one after the recovery
    # (how many were recovered depends on when the SDK reconnected); deltas at least
    # for the 3 live ones before the disconnect and the 3 after the first one back.
    assert stats["numFullPayloads"] + stats["numDeltaPayloads"] == len(docs), stats
    assert stats["numFullPayloads"] >= 2 and stats["numDeltaPayloads"] >= 6, stats


async def test_delta_only_for_flagged_publications(
    server: ServerProcess, clients: list[SdkClient]
) -> None:
    """Without `delta_publish`, only API publications with `delta: true` are deltas."""
    await check_every_other_flagged(clients, server, server, "protobuf", seed=5)


async def test_delta_flag_of_a_publish_on_another_node(
    server_factory: Callable[..., ServerProcess],
    redis_server: RedisServer,
    clients: list[SdkClient],
) -> None:
    """The API's `delta: true` on node B reaches node A's delta subscriber (Redis engine)."""
    settings = cluster_settings(
        [redis_server.url], namespaces={"flagged": FLAGGED}, durable_allow_volatile=True
    )
    a, b = start_nodes(server_factory, settings, count=2)
    await check_every_other_flagged(clients, a, b, "json", seed=7)


async def test_no_deltas_where_the_namespace_does_not_allow_them(
    server: ServerProcess, clients: list[SdkClient]
) -> None:
    docs = documents(6, 3)
    client = await start_client(clients, server, "json", "plain:x", len(docs))
    await client.event()
    for doc in docs:
        await publish(server, "plain:x", doc, delta=True)
    assert [(await client.event())["pub"] for _ in docs] == docs
    stats = (await client.event())["stats"]
    assert stats["numDeltaPayloads"] == 0, stats


async def test_unknown_delta_type_is_refused(
    server: ServerProcess, clients: list[SdkClient]
) -> None:
    ws, _ = await connected_ws(server.ws_url, server.token("u"))
    reply = await send_command(ws, 2, subscribe={"channel": "docs:a", "delta": "xdelta"})
    assert reply["error"]["code"] == 107
    reply = await send_command(ws, 3, subscribe={"channel": "docs:a", "delta": "fossil"})
    assert reply["subscribe"]["delta"] is True
    await ws.close()
