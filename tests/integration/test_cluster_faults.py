"""Faults in a cluster of `tidings serve` processes on one real redis-server.

- Redis stopped mid-stream (AOF, fsync always) and started again: publish
  answers error 100 while it is down, clients stay connected, and once it is
  back every acknowledged publication reaches the subscriber (lost = 0).
- A node killed with kill -9 during durable publishes: its client reconnects
  to another node with its last position and recovers (lost = 0).
- Start-up refuses durable channels on a Redis that would lose them, naming
  the setting, and a Redis that is not there.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cent import AsyncClient, PublishRequest
from centrifuge import ClientState, StreamPosition

from tests.conftest import ServerProcess, free_port, start_server
from tests.integration.cluster_support import (
    cluster_settings,
    durable_redis,
    start_nodes,
    wait_for,
)
from tests.integration.durable_support import Inbox
from tests.integration.support.api import api_call, api_raw
from tests.integration.support.sdk import Sdk, connecting
from tidings.testing.redis import RedisServer

TOTAL = 60
HALFWAY = 20


class Publisher:
    """A careful back end: publishes 0..TOTAL-1 through one node, retrying with the same key."""

    def __init__(self, node: ServerProcess, channel: str) -> None:
        self.node = node
        self.channel = channel
        self.acknowledged: list[int] = []
        self.errors: list[dict[str, Any]] = []
        self.halfway = asyncio.Event()
        self.resume = asyncio.Event()
        self.resume.set()

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for n in range(TOTAL):
                await self.resume.wait()
                payload = {"channel": self.channel, "data": {"n": n}, "idempotency_key": f"k{n}"}
                while True:
                    body = await api_raw(self.node, "publish", payload, http)
                    if "error" not in body:
                        break
                    self.errors.append(body["error"])
                    await asyncio.sleep(0.05)
                self.acknowledged.append(n)
                if len(self.acknowledged) == HALFWAY:
                    self.halfway.set()
                    self.resume.clear()


def received(rec: Any) -> list[int]:
    return [ctx.pub.data["n"] for ctx in rec.of("publication")]


async def test_redis_restart_mid_stream_loses_nothing(
    server_factory: Callable[..., ServerProcess],
    redis_factory: Callable[..., RedisServer],
) -> None:
    redis = durable_redis(redis_factory)
    a, b = start_nodes(server_factory, cluster_settings([redis.url]), count=2)
    async with connecting(a) as connect:
        alice = await connect("alice")
        sub, rec = await alice.subscribed("d:stream")
        publisher = Publisher(b, "d:stream")
        stream = asyncio.create_task(publisher.run())
        await publisher.halfway.wait()

        redis.stop(signal.SIGKILL)
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            body = await api_raw(b, "publish", {"channel": "d:stream", "data": {}}, http)
        assert body["error"]["code"] == 100, body
        assert "unavailable" in body["error"]["message"], body
        for method in ("history", "presence"):  # other calls that need Redis fail fast too
            answer = await api_raw(b, method, {"channel": "d:stream"})
            assert answer["error"]["code"] == 100, (method, answer)
        assert alice.client.state == ClientState.CONNECTED
        assert not alice.rec.of("disconnected")

        # a user connecting now cannot get their inbox: told to come back (3004), not refused
        connects = await _connects(a)
        late = Sdk(a.ws_url, a.token("late"), max_reconnect_delay=0.5)
        await late.client.connect()
        await wait_for(
            lambda: _connects_since(a, connects, 2), "the late client to come back (3004)"
        )
        assert late.client.state == ClientState.CONNECTING and not late.rec.of("disconnected")

        publisher.resume.set()  # the back end keeps trying while Redis is down
        await wait_for(lambda: _errors(publisher, 3), "publishes refused while Redis is down")
        await asyncio.to_thread(redis.start)
        await late.rec.wait("subscribed", lambda ctx: ctx.channel == "#late")
        await late.close()
        await asyncio.wait_for(stream, 30)

        async def everything() -> bool:
            return set(received(rec)) >= set(range(TOTAL))

        await wait_for(everything, "every acknowledged publication", within=20)
        got = received(rec)
        lost = set(publisher.acknowledged) - set(got)
        assert lost == set(), f"lost {sorted(lost)}"
        assert not alice.rec.of("disconnected"), "the client was disconnected by the outage"
        assert {e["code"] for e in publisher.errors} == {100}
        # the subscription was made to recover (resubscribed with its position)
        again = rec.of("subscribed")[1:]
        assert again and all(ctx.was_recovering for ctx in again), rec.events
        assert again[-1].recovered, again
        print(
            f"lost=0 duplicates={len(got) - len(set(got))} publish errors={len(publisher.errors)}"
        )
        await sub.unsubscribe()


async def test_node_killed_during_durable_publishes_loses_nothing(
    redis_nodes: list[ServerProcess],
) -> None:
    a, b, c = redis_nodes
    async with connecting(a) as connect:
        alice = await connect("alice")
        _, rec = await alice.subscribed("d:orders")
        publisher = Publisher(b, "d:orders")
        stream = asyncio.create_task(publisher.run())
        await publisher.halfway.wait()
        await wait_for(lambda: _has(rec, HALFWAY), "the first half on node A")
        last = rec.of("publication")[-1].pub.offset
        (subscribed,) = rec.of("subscribed")
        epoch = subscribed.stream_position.epoch

        a.stop(signal.SIGKILL)
        publisher.resume.set()  # the second half is published while alice is away

        # alice's app reconnects to another node and resumes from her last position
        async def position(_: str) -> StreamPosition:
            return StreamPosition(offset=last, epoch=epoch)

        again = await connect("alice", srv=c)
        _, rec_c = await again.subscribed("d:orders", get_state=position)
        (resumed,) = rec_c.of("subscribed")
        assert resumed.was_recovering and resumed.recovered, resumed
        await asyncio.wait_for(stream, 30)

        async def everything() -> bool:
            got = set(received(rec)) | set(received(rec_c))
            return got >= set(publisher.acknowledged) and len(publisher.acknowledged) == TOTAL

        await wait_for(everything, "every acknowledged publication after reconnecting")
        both = received(rec) + received(rec_c)
        assert set(both) == set(range(TOTAL))
        print(f"lost=0 duplicates={len(both) - len(set(both))}")


async def _connects(node: ServerProcess) -> int:
    info = await api_call(node, "info", {})
    return int(info["nodes"][0]["metrics"]["items"]["counter.connects"])


async def _connects_since(node: ServerProcess, before: int, more: int) -> bool:
    return await _connects(node) >= before + more


async def _errors(publisher: Publisher, count: int) -> bool:
    return len(publisher.errors) >= count


async def _has(rec: Any, count: int) -> bool:
    return len(rec.of("publication")) >= count


def test_durable_channels_refused_on_a_redis_that_would_lose_them(
    tmp_path: Path, redis_factory: Callable[..., RedisServer]
) -> None:
    redis = redis_factory(appendonly=False)
    settings = cluster_settings([redis.url])
    with pytest.raises(RuntimeError, match="exited 2") as failed:
        start_server(tmp_path, settings)
    assert "durable_allow_volatile" in str(failed.value)
    assert "appendonly" in str(failed.value)
    # accepted when asked for explicitly
    server = start_server(tmp_path, {**settings, "durable_allow_volatile": True})
    server.stop()


def test_start_fails_fast_without_redis(tmp_path: Path) -> None:
    settings = cluster_settings([f"redis://127.0.0.1:{free_port()}"])
    with pytest.raises(RuntimeError, match="exited 2") as failed:
        start_server(tmp_path, settings)
    assert "redis_address" in str(failed.value)
    assert "unavailable" in str(failed.value)


async def test_offline_inbox_and_ack_work_from_any_node(redis_nodes: list[ServerProcess]) -> None:
    a, b, c = redis_nodes
    api = AsyncClient(b.api_url, b.api_key)
    for n in range(6):
        await api.publish(PublishRequest(channel="#erin", data={"n": n}))
    on_a = await Inbox(a, "erin").connect()
    try:
        await on_a.received.wait_count(6)
        assert on_a.offsets == [1, 2, 3, 4, 5, 6]
        assert await on_a.ack(4) == {"channel": "#erin", "offset": 4}
    finally:
        await on_a.close()
    on_c = await Inbox(c, "erin").connect()  # the inbox replay starts after the ack
    try:
        await on_c.received.wait_count(2)
        await asyncio.sleep(0.2)
        assert on_c.offsets == [5, 6]
    finally:
        await on_c.close()


async def test_durable_replicas_make_a_publish_wait_for_a_replica(
    server_factory: Callable[..., ServerProcess],
    redis_factory: Callable[..., RedisServer],
) -> None:
    primary = durable_redis(redis_factory)
    settings = cluster_settings([primary.url], durable_replicas=1)
    node = server_factory(settings)
    publish = {"channel": "d:replicated", "data": {"n": 1}}
    # no replica yet: refused with 100, naming what is missing (never a silent success)
    refused = await api_raw(node, "publish", publish)
    assert refused["error"]["code"] == 100, refused
    assert "replica" in refused["error"]["message"], refused
    replica = redis_factory(appendonly=True, appendfsync="always", replica_of=primary)

    async def replicated() -> bool:
        body = await api_raw(node, "publish", publish)
        return "error" not in body

    await wait_for(replicated, "a publish acknowledged by the replica")
    stream = f"{settings['redis_prefix']}.stream{{d:replicated}}.l"
    assert int(replica.cli("LLEN", stream)) >= 1, "the replica does not have it"
