"""Publications of one loop turn reach each subscriber as one shared payload."""

from __future__ import annotations

import msgspec

from tests.core.conftest import Conn, settle
from tidings.core.node import Node
from tidings.protocol.centrifuge.messages import raw
from tidings.store.base import Position


def offsets(frames: list[bytes], channel: str) -> list[int]:
    found = []
    for frame in frames:
        for line in frame.split(b"\n"):
            reply = msgspec.json.decode(line)
            pub = (
                reply.get("push", {}).get("pub")
                if reply.get("push", {}).get("channel") == channel
                else None
            )
            if pub is not None:
                found.append(pub.get("offset", 0))
    return found


async def test_many_publications_in_one_turn_are_one_frame_per_subscriber(node: Node) -> None:
    conns = [Conn(node) for _ in range(3)]
    for c in conns:
        await c.connect()
        await c.subscribe("news")
        c.transport.take()
    for n in range(10):
        await node.publish("news", raw(b'{"n":%d}' % n))
    assert all(not c.transport.frames for c in conns), "fan-out waits for the turn's end"
    node.batches.flush()
    # Idle clients get the joined payload written at once, as one frame each.
    assert [len(c.transport.frames) for c in conns] == [1, 1, 1], "one payload per subscriber"
    await settle()
    for c in conns:
        frames = c.transport.frames
        assert len(frames) == 1
        assert offsets(frames, "news") == list(range(1, 11))


async def test_the_payload_is_joined_once_for_all_subscribers(node: Node) -> None:
    conns = [Conn(node) for _ in range(4)]
    for c in conns:
        await c.connect()
        await c.subscribe("news")
        c.transport.frames.clear()
    await node.publish("news", raw(b'{"a":1}'))
    await node.publish("news", raw(b'{"a":2}'))
    await settle()
    payloads = [c.transport.frames[0] for c in conns]
    assert all(p is payloads[0] for p in payloads), "the same bytes object goes to everyone"


async def test_a_client_recovering_in_the_same_turn_gets_no_duplicates(node: Node) -> None:
    watcher = Conn(node)
    await watcher.connect()
    await watcher.subscribe("news")
    first = await node.publish("news", raw(b'{"n":1}'))
    await settle()
    late = Conn(node)
    await late.connect("u2")
    late.transport.take()
    # Publish 2 and 3, then subscribe with recovery before the turn ends (nothing
    # here yields to the loop): 2 and 3 come back in the subscribe result and must
    # not come again when the turn's batch is fanned out.
    await node.publish("news", raw(b'{"n":2}'))
    await node.publish("news", raw(b'{"n":3}'))
    result = await node.subscriptions.subscribe_client(
        late.client,
        node.rules.resolve("news"),
        recover=True,
        since=Position(first.offset, first.epoch),
        recoverable=True,
    )
    assert node.batches, "the batch is still waiting for the end of the turn"
    await settle()
    await node.publish("news", raw(b'{"n":4}'))
    await settle()
    live = offsets(late.transport.frames, "news")
    assert [p.offset for p in result.publications or []] == [2, 3]
    assert live == [4], "nothing recovered arrives twice, nothing is missed"
    assert offsets(watcher.transport.frames, "news") == [1, 2, 3, 4]


async def test_a_client_with_queued_output_keeps_its_order(node: Node) -> None:
    conn = Conn(node)
    await conn.connect()
    await conn.subscribe("news")
    conn.transport.frames.clear()
    conn.client.enqueue(b'{"queued":1}')  # something already waits in the outbox
    await node.publish("news", raw(b'{"n":1}'))
    await settle()
    assert len(conn.transport.frames) == 1
    lines = conn.transport.frames[0].split(b"\n")
    assert lines[0] == b'{"queued":1}', "the publication goes behind what was queued"
    assert offsets([lines[1]], "news") == [1]
