"""A `batch` API call is bounded (`api_batch_max_commands`) and never holds the event loop.

A batch of 100k commands with `parallel: true` used to run in one go and
make every connection on the node wait for seconds. Now a longer batch is
refused whole (HTTP 400, error 107 naming the limit), and a maximal one
yields to the event loop every few commands: what other clients do goes on
meanwhile. The tests assert order of events (other work finishes while the
batch is still running), not timings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from tests.adversarial.support import post_raw
from tests.conftest import OPEN_CHANNEL, ServerProcess
from tests.core.conftest import Conn, token
from tidings.api.methods import ServerApi
from tidings.core.node import Node


def batch_body(count: int, parallel: bool, channel: str = "load") -> bytes:
    command = {"publish": {"channel": channel, "data": {"n": 1}}}
    return msgspec.json.encode({"commands": [command] * count, "parallel": parallel})


async def test_a_batch_over_the_limit_is_refused_whole(
    server_factory: Callable[..., ServerProcess],
) -> None:
    node = server_factory({"channel": OPEN_CHANNEL, "api_batch_max_commands": 50})
    status, answer = await post_raw(node, "/batch", batch_body(51, parallel=True))
    assert status == 400
    assert answer["error"]["code"] == 107
    assert "at most 50" in answer["error"]["message"]
    assert "api_batch_max_commands" in answer["error"]["message"]
    status, answer = await post_raw(node, "/history", b'{"channel":"load","limit":-1}')
    assert not answer["result"].get("publications"), "nothing of it ran"
    status, answer = await post_raw(node, "/batch", batch_body(50, parallel=False))
    assert status == 200 and len(answer["replies"]) == 50


async def test_the_default_limit_is_1000(server: ServerProcess) -> None:
    status, answer = await post_raw(server, "/batch", batch_body(1001, parallel=True))
    assert (status, answer["error"]["code"]) == (400, 107)
    status, answer = await post_raw(server, "/batch", batch_body(1000, parallel=True))
    assert status == 200
    assert all(
        reply == {"publish": {"offset": i + 1, "epoch": reply["publish"]["epoch"]}}
        for i, reply in enumerate(answer["replies"])
    )


@pytest.mark.parametrize("parallel", [True, False])
async def test_a_maximal_batch_lets_other_clients_connect_and_publish(
    node_factory: Callable[..., Node], parallel: bool
) -> None:
    node = node_factory()
    api = ServerApi(node)
    watcher = Conn(node)
    await watcher.connect("watcher")
    await watcher.subscribe("other")
    watcher.transport.take()

    request = api.decode("batch", batch_body(1000, parallel))
    batch = asyncio.create_task(api.call("batch", request))

    async def other_client() -> None:
        # Driven turn by turn (no settling helpers, which wait many turns themselves).
        conn = Conn(node)
        conn.client.handle_frame(msgspec.json.encode({"id": 1, "connect": {"token": token("o")}}))
        await replied(conn, 1)
        publish = {"id": 5, "publish": {"channel": "other", "data": {"x": 1}}}
        conn.client.handle_frame(msgspec.json.encode(publish))
        assert "publish" in await replied(conn, 5)

    other = asyncio.create_task(other_client())
    done, _ = await asyncio.wait({batch, other}, return_when=asyncio.FIRST_COMPLETED)
    assert other in done and batch not in done, "the other client waited for the whole batch"
    await other
    result: dict[str, Any] = await batch
    assert len(result["replies"]) == 1000
    pubs = [r for r in watcher.transport.take() if "pub" in r.get("push", {})]
    assert [p["push"]["pub"]["data"] for p in pubs] == [{"x": 1}]


async def replied(conn: Conn, command_id: int) -> dict[str, Any]:
    """Wait, one loop turn at a time, for the reply to `command_id`."""
    for _ in range(10_000):
        for reply in conn.transport.replies():
            if reply.get("id") == command_id:
                return reply
        await asyncio.sleep(0)
    raise AssertionError(f"no reply to {command_id}")


async def test_a_long_broadcast_yields_too(node_factory: Callable[..., Node]) -> None:
    node = node_factory()
    api = ServerApi(node)
    body = msgspec.json.encode({"channels": [f"c{i}" for i in range(500)], "data": {"b": 1}})
    broadcast = asyncio.create_task(api.call("broadcast", api.decode("broadcast", body)))
    turns = 0
    while not broadcast.done():
        await asyncio.sleep(0)
        turns += 1
    assert turns > 5, "the broadcast ran without letting the loop serve anyone else"
    assert len((await broadcast)["responses"]) == 500
