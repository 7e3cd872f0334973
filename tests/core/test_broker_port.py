"""The node's broker port: deliveries in offset order, and recovery instead of a silent gap."""

from __future__ import annotations

from msgspec import Raw

from tests.core.conftest import Conn, settle
from tidings.core.node import Node
from tidings.protocol.centrifuge.messages import Publication
from tidings.store.base import Position


async def subscribed(node: Node, channel: str = "c") -> tuple[Conn, str]:
    conn = Conn(node)
    await conn.connect()
    reply = await conn.subscribe(channel, recoverable=True)
    return conn, reply["subscribe"].get("epoch", "")


def pushes(conn: Conn) -> list[dict[str, object]]:
    return [r["push"] for r in conn.transport.take() if "push" in r]


async def test_a_gap_makes_subscribers_resubscribe_with_recovery(node: Node) -> None:
    conn, epoch = await subscribed(node)
    await node.publish("c", Raw(b'{"n":1}'))
    await settle()
    assert [p.get("pub", {}).get("offset") for p in pushes(conn)] == [1]

    # offset 3 arrives but 2 never did: nothing silently skipped
    node.port.on_publication("c", Publication(data=Raw(b"{}"), offset=3), Position(3, epoch))
    await settle()
    (push,) = pushes(conn)
    assert push["unsubscribe"] == {"code": 2500, "reason": "insufficient state"}
    assert "c" not in conn.client.subscriptions


async def test_a_repeated_offset_is_not_delivered_twice(node: Node) -> None:
    conn, epoch = await subscribed(node)
    await node.publish("c", Raw(b'{"n":1}'))
    await settle()
    pushes(conn)
    node.port.on_publication("c", Publication(data=Raw(b"{}"), offset=1), Position(1, epoch))
    await settle()
    assert pushes(conn) == []


async def test_resubscribed_after_an_outage_recovers_history_channels_only(
    node_factory: object,
) -> None:
    node = node_factory(namespaces={"live": {"allow_subscribe_for_client": True}})  # type: ignore[operator]
    conn, _ = await subscribed(node)
    await conn.subscribe("live:x", cid=3)
    conn.transport.take()
    node.port.on_lost_connection("gone")
    node.port.on_resubscribed(["c", "live:x"])
    await settle()
    assert [p["channel"] for p in pushes(conn)] == ["c"]  # live:x has no history to recover
    assert "live:x" in conn.client.subscriptions


async def test_a_server_side_subscription_reconnects_instead(node_factory: object) -> None:
    node = node_factory(personal_channel=True, personal_channel_durable=False)  # type: ignore[operator]
    conn = Conn(node)
    await conn.connect("u1")
    node.port.on_resubscribed(["#u1"])
    await settle()
    assert conn.transport.close_code == 3010


async def test_junk_on_the_control_channel_is_dropped(node: Node) -> None:
    node.port.on_control(b"\x00junk")
    node.port.on_control(b"")
    assert len(node.peers.nodes) == 0
