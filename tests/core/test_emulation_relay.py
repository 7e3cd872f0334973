"""Emulation requests relayed between two in-process nodes over a shared memory broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.core.conftest import make_settings
from tidings.broker.memory import MemoryBroker, MemoryBrokerHub
from tidings.core.control import EmulationForward, encode_command
from tidings.core.emulation import EmulationSessions, Outcome
from tidings.core.emulation_relay import ControlRelay, RelayUnavailable
from tidings.core.node import Node
from tidings.register.memory import MemoryUserRegister


class _Target:
    def __init__(self) -> None:
        self.received: list[bytes] = []

    def handle_commands(self, data: bytes) -> None:
        self.received.append(data)


class _Side:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.sessions = EmulationSessions(node.uid)
        self.relay = ControlRelay(node.peers, self.sessions, timeout=0.5, limit=2)
        self.sessions.relay = node.peers.emulation = self.relay


@pytest.fixture
async def sides() -> AsyncIterator[tuple[_Side, _Side]]:
    hub, register = MemoryBrokerHub(), MemoryUserRegister()
    settings = make_settings(name="x")
    a = Node(settings, broker=MemoryBroker(hub), register=register)
    b = Node(settings, broker=MemoryBroker(hub), register=register)
    await a.start()
    await b.start()
    yield _Side(a), _Side(b)
    await a.stop()
    await b.stop()


async def _introduce(sides: tuple[_Side, _Side]) -> None:
    """Each node hears the other's heartbeat (the relay only sends to live nodes)."""
    for side in sides:
        await side.node.broker.publish_control(encode_command(side.node.peers.heartbeat()))


async def test_commands_reach_the_session_on_the_other_node(
    sides: tuple[_Side, _Side],
) -> None:
    a, b = sides
    await _introduce(sides)
    target = _Target()
    session = b.sessions.add(target)
    assert await a.relay.relay(b.node.uid, session, b"one") is Outcome.DELIVERED
    assert await a.relay.relay(b.node.uid, session, b"two") is Outcome.DELIVERED
    assert target.received == [b"one", b"two"]
    assert (a.relay.forwarded, b.relay.received) == (2, 2)


async def test_unknown_session_on_the_other_node(sides: tuple[_Side, _Side]) -> None:
    a, b = sides
    await _introduce(sides)
    assert await a.relay.relay(b.node.uid, "no-such", b"x") is Outcome.UNKNOWN_SESSION
    assert b.sessions.refused == 1


async def test_a_node_never_heard_of_is_unknown_at_once(sides: tuple[_Side, _Side]) -> None:
    a, b = sides
    assert await a.relay.relay("forged", "s", b"x") is Outcome.UNKNOWN_NODE
    assert a.relay.forwarded == 0 and b.relay.received == 0


async def test_a_silent_node_fails_the_request_and_the_waiting_are_bounded(
    sides: tuple[_Side, _Side],
) -> None:
    a, b = sides
    await _introduce(sides)
    b.node.peers.emulation = None  # b hears the forwards but never answers
    waiting = [asyncio.ensure_future(a.relay.relay(b.node.uid, "s", b"x")) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(RelayUnavailable, match="too many"):
        await a.relay.relay(b.node.uid, "s", b"x")
    for task in waiting:
        with pytest.raises(RelayUnavailable, match="did not answer"):
            await task
    # Nothing is left waiting: the next request is sent again.
    b.node.peers.emulation = b.relay
    target = _Target()
    assert await a.relay.relay(b.node.uid, b.sessions.add(target), b"y") is Outcome.DELIVERED


async def test_a_stray_answer_is_ignored(sides: tuple[_Side, _Side]) -> None:
    a, b = sides
    await _introduce(sides)
    forward = EmulationForward(sender=a.node.uid, request=999, session="s", data=b"x")
    b.relay.on_forward(forward)  # answers request 999, which a never sent
    await asyncio.sleep(0.05)
    target = _Target()
    assert await a.relay.relay(b.node.uid, b.sessions.add(target), b"z") is Outcome.DELIVERED
