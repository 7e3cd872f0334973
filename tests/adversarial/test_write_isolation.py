"""An exception for one client (or one item) never stops the machinery shared by all.

In-process node with in-memory transports: a transport whose `write` raises
stands for any per-client failure (a transport bug, an encoder error). That
client is dropped with 3009; every other client, and every later flush, is
unaffected. The same holds for the node's other loops over many items: the
ping wheel, token deadlines, the event dispatcher, paced broadcasts and the
user-events sender.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from msgspec import Raw

from tests.core.conftest import Conn, settle
from tidings.core.broadcast import PacedBroadcasts
from tidings.core.deadlines import Deadlines
from tidings.core.events import Event, EventDispatcher, EventType
from tidings.core.flusher import Flusher
from tidings.core.node import Node
from tidings.protocol.centrifuge.json_codec import JsonCodec
from tidings.protocol.centrifuge.messages import Reply
from tidings.protocol.centrifuge.session import Session
from tidings.testing import MemoryTransport
from tidings.upstream.user_events import UserEventSender

WRITE_ERROR = 3009


class BrokenTransport(MemoryTransport):
    """A transport whose writes raise (once `broken`), like a failing socket adapter."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = False

    def write(self, data: bytes) -> None:
        if self.broken:
            raise RuntimeError("simulated transport failure")
        super().write(data)


class BrokenConn(Conn):
    def __init__(self, node: Node) -> None:
        self.node = node
        self.transport = BrokenTransport()
        self.client = node.accept(self.transport)


def pubs(conn: Conn) -> list[Any]:
    return [r["push"]["pub"]["data"] for r in conn.transport.take() if "pub" in r.get("push", {})]


async def subscribed(node: Node, conn: Conn, user: str) -> Conn:
    await conn.connect(user)
    await conn.subscribe("room")
    conn.transport.take()
    return conn


async def test_a_failing_write_in_a_publication_batch_drops_only_that_client(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    before = await subscribed(node, Conn(node), "before")
    broken = await subscribed(node, BrokenConn(node), "broken")
    after = await subscribed(node, Conn(node), "after")
    assert isinstance(broken.transport, BrokenTransport)
    broken.transport.broken = True

    with caplog.at_level(logging.WARNING):
        await node.publish("room", Raw(b'{"n":1}'))
        await settle()
    assert pubs(before) == pubs(after) == [{"n": 1}]
    assert broken.closed_with == WRITE_ERROR
    assert any("simulated transport failure" in r.getMessage() for r in caplog.records)
    assert node.counters["disconnected_write_error"] == 1

    # Later flushes still run: pushes, command replies, and new connections.
    await node.publish("room", Raw(b'{"n":2}'))
    await settle()
    assert pubs(before) == pubs(after) == [{"n": 2}]
    late = Conn(node)
    await late.connect("late")


async def test_a_failing_write_in_the_flusher_drops_only_that_client(node: Node) -> None:
    conns = [Conn(node), BrokenConn(node), Conn(node)]
    for index, conn in enumerate(conns):
        await conn.connect(f"u{index}")
        conn.transport.take()
    broken = conns[1].transport
    assert isinstance(broken, BrokenTransport)
    broken.broken = True
    for conn in conns:
        conn.client.enqueue(b'{"queued":true}')  # written by the flusher, not write_now
    await settle()
    assert conns[0].transport.take() == conns[2].transport.take() == [{"queued": True}]
    assert conns[1].closed_with == WRITE_ERROR
    # The next turn's flush runs too (the "scheduled" flag was reset).
    reply = await conns[2].call({"id": 7, "ping": {}})
    assert reply == {"id": 7, "ping": {}}


async def test_the_flusher_resets_when_the_batches_raise(node: Node) -> None:
    calls = 0

    def before() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("batches failed")

    flusher = Flusher(asyncio.get_running_loop(), before)
    conn = Conn(node)
    await conn.connect()
    conn.transport.take()
    conn.client.outbox.push(b'{"a":1}')
    flusher.mark(conn.client)
    await settle()
    assert conn.transport.take() == [{"a": 1}], "marked clients are written all the same"
    conn.client.outbox.push(b'{"a":2}')
    flusher.mark(conn.client)
    await settle()
    assert calls == 2, "a new flush was scheduled after the failed one"
    assert conn.transport.take() == [{"a": 2}]


async def test_the_ping_wheel_pings_everyone_when_one_client_fails(node: Node) -> None:
    conns = [Conn(node) for _ in range(3)]
    for index, conn in enumerate(conns):
        await conn.connect(f"p{index}")
        conn.transport.take()
    wheel = node.pings
    slot = conns[0].client.ping_slot
    assert all(c.client.ping_slot == slot for c in conns)

    class BrokenSession(Session):
        def ping_sent(self) -> None:
            raise RuntimeError("ping failed")

    # The slot is a set: whichever order it is walked in, the failure is in it.
    broken = BrokenSession()
    broken.connected()
    conns[1].client.session = broken
    while wheel._pos != (slot - 1) % wheel.size:
        wheel._pos = (wheel._pos + 1) % wheel.size
    wheel.advance()
    await settle()
    assert conns[0].transport.take() == conns[2].transport.take() == [{}]
    assert conns[1].closed_with == WRITE_ERROR


async def test_deadlines_fire_every_item_of_a_second_when_one_raises() -> None:
    fired: list[str] = []

    def fire(item: str) -> None:
        fired.append(item)
        if item == "b":
            raise RuntimeError("expiry failed")

    deadlines: Deadlines[str] = Deadlines(fire)
    for item in "abc":
        deadlines.add(item, 0)  # already due
    await asyncio.sleep(0.05)
    assert sorted(fired) == ["a", "b", "c"]
    deadlines.add("d", 0)
    await asyncio.sleep(0.05)
    assert "d" in fired


async def test_the_event_dispatcher_survives_a_failing_subscriber() -> None:
    class Exploding(asyncio.Queue[Event]):
        def put_nowait(self, item: Event) -> None:
            raise RuntimeError("subscriber failed")

    dispatcher = EventDispatcher()
    dispatcher.add_subscriber(EventType.PUBLISHED, Exploding())
    good = dispatcher.subscribe(EventType.CONNECTED)
    dispatcher.start()
    try:
        dispatcher.emit(Event(EventType.PUBLISHED, channel="x"))
        dispatcher.emit(Event(EventType.CONNECTED, client="c1"))
        event = await asyncio.wait_for(good.get(), 5)
        assert event.client == "c1"
    finally:
        await dispatcher.stop()


async def test_a_paced_broadcast_goes_on_after_an_unexpected_error() -> None:
    sent: list[str] = []

    async def send(user: str) -> None:
        if user == "u1":
            raise RuntimeError("store exploded")
        sent.append(user)

    broadcasts = PacedBroadcasts()
    broadcasts.start(["u0", "u1", "u2", "u3"], send, rate=1000.0)
    await asyncio.wait_for(broadcasts.join(), 5)
    assert sent == ["u0", "u2", "u3"]


async def test_a_reply_that_cannot_be_encoded_drops_only_that_client(node: Node) -> None:
    class BrokenCodec(JsonCodec):
        def encode(self, reply: Reply) -> bytes:
            if reply.ping is not None:
                raise ValueError("cannot encode")
            return super().encode(reply)

    broken = Conn(node)
    broken.client.codec = BrokenCodec()
    other = Conn(node)
    await broken.connect("b")
    await other.connect("o")
    broken.client.handle_frame(b'{"id":2,"ping":{}}')
    await settle()
    assert broken.closed_with == WRITE_ERROR
    assert await other.call({"id": 3, "ping": {}}) == {"id": 3, "ping": {}}


async def test_the_user_events_sender_goes_on_after_a_batch_fails() -> None:
    sent: list[list[str]] = []

    class Sender(UserEventSender):
        async def _deliver(self, session: Any, batch: list[Event]) -> None:
            if not sent and batch[0].user == "poison":
                sent.append(["failed"])
                raise ValueError("cannot encode this batch")
            sent.append([e.user for e in batch])

    events = EventDispatcher()
    sender = Sender(events, "http://127.0.0.1:9/", linger=0.0)
    events.start()
    sender.start()
    try:
        events.emit(Event(EventType.USER_ONLINE, user="poison"))
        await asyncio.sleep(0.05)
        events.emit(Event(EventType.USER_ONLINE, user="next"))
        for _ in range(500):
            if ["next"] in sent:
                break
            await asyncio.sleep(0.01)
        assert sent == [["failed"], ["next"]]
    finally:
        await sender.stop()
        await events.stop()
