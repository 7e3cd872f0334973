"""The bridges between `tidings serve` and `tidings queue`, all real processes.

Inbound: a message PUB'd to a queue topic reaches a centrifuge-python subscriber of
the channel it names; bad messages go to `<topic>.dead`; a message is FIN'd only
after it was published. Upstream: a client's publication to a namespace with
`queue_topic` lands in that topic, where pynsq reads it, and an RPC of a namespace
in `queue_rpc_topics` in its topic; with the queue down the
client gets error 100 "queue unavailable" at once, and both bridges resume when
the queue is back.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from centrifuge import ReplyError

from tests.conftest import ServerProcess
from tests.integration.support.queue import QueueProcess, RawClient, start_queue
from tests.integration.support.sdk import TIMEOUT, connecting
from tests.peers.nsq_processes import ROOT, run_client, wait_for

PYNSQ = ROOT / "tests" / "peers" / "pynsq_client.py"

pytestmark = [pytest.mark.timeout(120)]

SUBSCRIBE = {"allow_subscribe_for_client": True}


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[QueueProcess]:
    process = start_queue(tmp_path)
    # a restart must come back on the same TCP port: the bridges know that address
    process.args += ["--tcp-address", process.tcp_address]
    yield process
    process.kill()


@pytest.fixture
def node(server_factory: Callable[..., ServerProcess], queue: QueueProcess) -> ServerProcess:
    return server_factory(
        {
            "queue_consume": [
                {"topic": "push", "channel": "tidings", "nsqd_tcp_addresses": [queue.tcp_address]}
            ],
            "queue_publish_address": queue.tcp_address,
            "queue_rpc_topics": {"orders": "orders-rpc"},
            "namespaces": {
                "news": SUBSCRIBE,
                "inbox": {**SUBSCRIBE, "history_size": 10, "history_ttl": "5m", "durable": True},
                "orders": {"allow_publish_for_client": True, "queue_topic": "upstream"},
            },
        }
    )


def pub(queue: QueueProcess, topic: str, message: Any) -> None:
    raw = message if isinstance(message, bytes) else json.dumps(message).encode()
    assert queue.http("POST", f"/pub?topic={topic}", raw) == (200, b"OK")


def depth(queue: QueueProcess, topic: str, channel: str) -> tuple[int, int]:
    """(depth, in flight) of a channel, (-1, -1) while it does not exist."""
    try:
        stats = queue.channel_stats(topic, channel)
    except KeyError:
        return -1, -1
    return stats["depth"], stats["in_flight_count"]


async def test_queue_message_reaches_sdk_subscriber(
    node: ServerProcess, queue: QueueProcess
) -> None:
    async with connecting(node) as connect:
        conn = await connect("alice")
        _, rec = await conn.subscribed("news:sport")
        pub(queue, "push", {"channel": "news:sport", "data": {"goal": 1}})
        (ctx,) = await rec.wait("publication")
        assert ctx.pub.data == {"goal": 1}
        # FIN'd after the publish: nothing left in the bridge's channel
        wait_for(lambda: depth(queue, "push", "tidings") == (0, 0), what="FIN")


async def test_bad_messages_go_to_the_dead_letter_topic(
    node: ServerProcess, queue: QueueProcess
) -> None:
    async with connecting(node) as connect:
        conn = await connect("alice")
        _, rec = await conn.subscribed("news:a")
        bad = [b"not json", {"data": 1}, {"channel": "nowhere:x", "data": 1}, {"channel": "news:a"}]
        for message in bad:
            pub(queue, "push", message)
        pub(queue, "push", {"channel": "news:a", "data": "after the bad ones"})
        (ctx,) = await rec.wait("publication")
        assert ctx.pub.data == "after the bad ones"
        wait_for(lambda: depth(queue, "push", "tidings") == (0, 0), what="all FIN'd")
        # nobody consumes push.dead: the topic holds the bad messages, unchanged
        (dead,) = [t for t in queue.stats()["topics"] if t["topic_name"] == "push.dead"]
        assert dead["message_count"] == len(bad)
        assert rec.of("publication") == [ctx]


async def test_durable_channel_publishes_an_idempotency_key_once(
    node: ServerProcess, queue: QueueProcess
) -> None:
    async with connecting(node) as connect:
        conn = await connect("alice")
        _, rec = await conn.subscribed("inbox:alice")
        message = {"channel": "inbox:alice", "data": {"n": 1}, "idempotency_key": "k1"}
        pub(queue, "push", message)
        pub(queue, "push", message)
        pub(queue, "push", {"channel": "inbox:alice", "data": {"n": 2}})
        await rec.wait("publication", count=2)
        wait_for(lambda: depth(queue, "push", "tidings") == (0, 0), what="all FIN'd")
        await asyncio.sleep(0.3)
        assert [ctx.pub.data for ctx in rec.of("publication")] == [{"n": 1}, {"n": 2}]
        assert [ctx.pub.offset for ctx in rec.of("publication")] == [1, 2]


async def test_client_publication_lands_in_topic_for_pynsq(
    node: ServerProcess, queue: QueueProcess
) -> None:
    async with connecting(node) as connect:
        conn = await connect("bob")
        for i in range(3):
            await asyncio.wait_for(conn.client.publish("orders:eu", {"order": i}), TIMEOUT)
    out = await asyncio.to_thread(
        run_client,
        [sys.executable, str(PYNSQ), "bodies", queue.tcp_address, "upstream", "backend", "3"],
    )
    messages = [json.loads(body) for body in out["bodies"]]
    assert [m["data"] for m in messages] == [{"order": i} for i in range(3)]
    assert {(m["channel"], m["user"]) for m in messages} == {("orders:eu", "bob")}
    assert all(m["client"] == conn.id for m in messages)


async def test_rpc_of_a_forwarded_namespace_lands_in_its_topic(
    node: ServerProcess, queue: QueueProcess
) -> None:
    async with connecting(node) as connect:
        conn = await connect("dave")
        result = await asyncio.wait_for(conn.client.rpc("orders:create", {"item": 7}), TIMEOUT)
        assert result.data == {"queued": True}
        with pytest.raises(ReplyError) as err:  # not forwarded, and no RPC proxy
            await asyncio.wait_for(conn.client.rpc("other:create", {"item": 7}), TIMEOUT)
        assert err.value.code == 108
    reader = await RawClient.connect(queue.tcp_port)
    reader.send(b"SUB orders-rpc backend\nRDY 1\n")
    assert await reader.response() == b"OK"
    message = json.loads((await reader.message()).body)
    reader.close()
    assert message == {
        "method": "orders:create",
        "data": {"item": 7},
        "user": "dave",
        "client": conn.id,
    }


async def test_queue_down_gives_a_clear_error_then_both_bridges_resume(
    node: ServerProcess, queue: QueueProcess
) -> None:
    async with connecting(node) as connect:
        conn = await connect("carol")
        _, rec = await conn.subscribed("news:x")
        queue.kill()
        await asyncio.sleep(0.3)
        with pytest.raises(ReplyError) as err:
            await asyncio.wait_for(conn.client.publish("orders:eu", {"order": 1}), TIMEOUT)
        assert err.value.code == 100 and "queue unavailable" in err.value.message
        with pytest.raises(ReplyError) as err:
            await asyncio.wait_for(conn.client.rpc("orders:create", {"order": 1}), TIMEOUT)
        assert err.value.code == 100 and "queue unavailable" in err.value.message
        queue.start()

        async def upstream_back() -> None:
            while True:
                try:
                    await conn.client.publish("orders:eu", {"order": 2})
                    return
                except ReplyError as exc:
                    assert exc.code == 100
                    await asyncio.sleep(0.2)

        await asyncio.wait_for(upstream_back(), TIMEOUT)
        pub(queue, "push", {"channel": "news:x", "data": "back"})
        await rec.wait("publication", lambda ctx: ctx.pub.data == "back")
    # the refused publication never reached the queue; the one after the restart did
    (upstream,) = [t for t in queue.stats()["topics"] if t["topic_name"] == "upstream"]
    assert upstream["message_count"] == 1
