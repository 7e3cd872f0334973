"""Tags filters (`tf`) on a real Node: live batches, recovery, refusals, bookkeeping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from msgspec import Raw

from tests.core.conftest import Conn, settle
from tidings.core.node import Node
from tidings.protocol.centrifuge import codes

FILTERED: dict[str, Any] = {
    "history_size": 20,
    "history_ttl": "1m",
    "force_recovery": True,
    "allow_subscribe_for_client": True,
    "allow_tags_filter": True,
    "allowed_delta_types": ["fossil"],
}
BTC = {"key": "ticker", "cmp": "eq", "val": "BTC"}


@pytest.fixture
def node(node_factory: Callable[..., Node]) -> Node:
    return node_factory(namespaces={"f": FILTERED})


async def connected(node: Node, user: str) -> Conn:
    conn = Conn(node)
    await conn.connect(user)
    return conn


def datas(frames: list[dict[str, Any]], channel: str) -> list[Any]:
    return [
        f["push"]["pub"]["data"]
        for f in frames
        if "push" in f and f["push"].get("channel") == channel and "pub" in f["push"]
    ]


async def received(conn: Conn) -> list[dict[str, Any]]:
    """What reached `conn` once the publications made so far are flushed."""
    await settle()
    return await conn.send()


async def publish(node: Node, channel: str, n: int, ticker: str) -> None:
    await node.publish(channel, Raw(b'{"n":%d}' % n), tags={"ticker": ticker})


async def test_filtered_and_unfiltered_subscribers_of_one_channel(node: Node) -> None:
    filtered, plain = await connected(node, "a"), await connected(node, "b")
    reply = await filtered.subscribe("f:px", tf=BTC, delta="fossil")
    assert "error" not in reply, reply
    assert "delta" not in reply["subscribe"]  # a filtered subscriber gets no deltas
    assert "error" not in await plain.subscribe("f:px")
    # Several publications in one loop turn form one batch; then one on its own.
    for n, ticker in enumerate(["BTC", "ETH", "BTC", "SOL"]):
        await publish(node, "f:px", n, ticker)
    await settle()
    await publish(node, "f:px", 4, "ETH")
    await publish(node, "f:px", 5, "BTC")
    got_filtered = datas(await received(filtered), "f:px")
    got_plain = datas(await received(plain), "f:px")
    assert got_filtered == [{"n": 0}, {"n": 2}, {"n": 5}]
    assert got_plain == [{"n": i} for i in range(6)]


async def test_untagged_publications_and_negative_filters(node: Node) -> None:
    conn = await connected(node, "a")
    not_eth = {"key": "ticker", "cmp": "neq", "val": "ETH"}
    assert "error" not in await conn.subscribe("f:n", tf=not_eth)
    await node.publish("f:n", Raw(b"1"))  # no tags: "neq" matches a missing tag
    await publish(node, "f:n", 2, "ETH")
    await publish(node, "f:n", 3, "BTC")
    assert datas(await received(conn), "f:n") == [1, {"n": 3}]


async def test_recovery_leaves_out_what_the_filter_excludes(node: Node) -> None:
    conn = await connected(node, "a")
    first = await conn.subscribe("f:r", tf=BTC)
    epoch = first["subscribe"]["epoch"]
    await conn.call({"id": 3, "unsubscribe": {"channel": "f:r"}})
    for n, ticker in enumerate(["BTC", "ETH", "BTC"]):
        await publish(node, "f:r", n, ticker)
    reply = await conn.subscribe("f:r", cid=4, tf=BTC, recover=True, epoch=epoch, offset=0)
    result = reply["subscribe"]
    assert result["recovered"] is True
    assert [p["data"] for p in result["publications"]] == [{"n": 0}, {"n": 2}]
    await publish(node, "f:r", 3, "ETH")
    await publish(node, "f:r", 4, "BTC")
    assert datas(await received(conn), "f:r") == [{"n": 4}]


@pytest.mark.parametrize(
    ("channel", "extra"),
    [
        ("plain", {"tf": BTC}),  # the namespace does not allow filters
        ("f:x", {"tf": {"op": "xor", "nodes": [BTC]}}),
        ("f:x", {"tf": {"key": "ticker", "cmp": "in"}}),
        ("f:x", {"tf": {"op": "not", "nodes": [BTC, BTC]}}),
        ("f:x", {"tf": {"nodes": "x"}}),
        ("f:x", {"tf": [1]}),
    ],
)
async def test_refused_filters_get_107_and_leave_no_subscription(
    node: Node, channel: str, extra: dict[str, Any]
) -> None:
    conn = await connected(node, "a")
    reply = await conn.subscribe(channel, **extra)
    assert reply["error"] == {"code": 107, "message": "bad request"}
    assert channel not in conn.client.subscriptions
    assert conn.closed_with is None
    assert "error" not in await conn.subscribe(channel, cid=5)  # and may subscribe afterwards


def nested_subscribe(depth: int) -> bytes:
    deep = b'{"op":"not","nodes":[' * depth + b"{}" + b"]}" * depth
    return b'{"id":2,"subscribe":{"channel":"f:d","tf":' + deep + b"}}"


async def test_deep_filters_are_refused_and_others_unaffected(node: Node) -> None:
    attacker, victim = await connected(node, "x"), await connected(node, "v")
    assert "error" not in await victim.subscribe("f:d", tf=BTC)
    (reply,) = await attacker.send(nested_subscribe(100))
    assert reply["error"]["code"] == 107
    # Nested beyond what the frame decoder takes: a malformed frame, the attacker goes.
    assert await attacker.send(nested_subscribe(20_000)) == []
    assert attacker.closed_with == 3501
    await publish(node, "f:d", 1, "BTC")
    assert datas(await received(victim), "f:d") == [{"n": 1}]


async def test_filters_are_forgotten_on_unsubscribe_and_disconnect(node: Node) -> None:
    a, b = await connected(node, "a"), await connected(node, "b")
    assert "error" not in await a.subscribe("f:g", tf=BTC)
    assert "error" not in await b.subscribe("f:g", tf=BTC)
    filters = node.batches._filters
    assert set(filters["f:g"]) == {a.client, b.client}
    await a.call({"id": 3, "unsubscribe": {"channel": "f:g"}})
    assert set(filters["f:g"]) == {b.client}
    b.client.disconnect(codes.SHUTDOWN)
    await settle()
    assert "f:g" not in filters
