"""Two nodes in one process on a shared memory broker and register: commands cross nodes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from msgspec import Raw

from tests.core.conftest import Conn, make_settings, settle
from tidings.broker.memory import MemoryBroker, MemoryBrokerHub
from tidings.core.control import encode_command
from tidings.core.node import Node
from tidings.protocol.centrifuge.codes import Disconnect
from tidings.register.memory import MemoryUserRegister


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Node, Node]]:
    hub, register = MemoryBrokerHub(), MemoryUserRegister()
    settings = make_settings(name="x")
    a = Node(settings, broker=MemoryBroker(hub), register=register)
    b = Node(settings, broker=MemoryBroker(hub), register=register)
    a.name, b.name = "a", "b"
    yield a, b
    await a.stop()
    await b.stop()


async def test_publication_on_one_node_reaches_the_other(pair: tuple[Node, Node]) -> None:
    a, b = pair
    on_b = Conn(b)
    await on_b.connect()
    await on_b.subscribe("c")
    on_b.transport.take()
    await a.publish("c", Raw(b'{"x":1}'))
    await settle()
    (push,) = [r["push"] for r in on_b.transport.take()]
    assert push["pub"]["data"] == {"x": 1} and push["pub"]["offset"] == 1


async def test_disconnect_and_status_reach_a_user_on_the_other_node(
    pair: tuple[Node, Node],
) -> None:
    a, b = pair
    on_b = Conn(b)
    await on_b.connect("bob")
    await settle()
    elsewhere = await a.peers.connections("bob")
    assert [(c.user, c.node) for c in elsewhere] == [("bob", b.uid)]
    await a.peers.disconnect_user("bob", Disconnect(4000, "out"))
    await settle()
    assert on_b.transport.close_code == 4000
    await settle()
    assert await a.peers.connections("bob") == []


async def test_heartbeats_list_the_other_node(pair: tuple[Node, Node]) -> None:
    a, b = pair
    await b.broker.publish_control(encode_command(b.peers.heartbeat()))
    assert [n["name"] for n in a.peers.info()] == ["b"]
    assert b.peers.info() == []  # a node does not hear itself
