"""Server pings on a timing wheel; a client that does not pong is cut off with 3012."""

from __future__ import annotations

import asyncio

import pytest

from tests.core.conftest import Conn, settle
from tidings.core.heartbeat import PingWheel
from tidings.core.node import Node


async def connected(node: Node) -> Conn:
    conn = Conn(node)
    await conn.connect()
    node.pings.remove(conn.client)  # the node's own wheel is not under test here
    return conn


@pytest.mark.parametrize(
    ("interval", "pong_timeout", "tick", "size", "lag"),
    [(25, 8, 1.0, 25, 8), (1, 0.5, 0.1, 10, 5), (1, 5, 0.1, 10, 9), (0.1, 0.0001, 0.01, 10, 1)],
)
def test_wheel_geometry(
    interval: float, pong_timeout: float, tick: float, size: int, lag: int
) -> None:
    wheel = PingWheel(interval, pong_timeout)
    assert wheel.tick == pytest.approx(tick)
    assert wheel.size == size
    assert wheel.pong_lag == lag, "the pong check comes before the next ping of the slot"


async def test_first_ping_within_one_interval_after_add(node: Node) -> None:
    # Never later than one interval: SDKs reconnect when pings are late, not early.
    wheel = PingWheel(1, 0.5)  # 10 slots, pong lag 5
    conn = await connected(node)
    wheel.add(conn.client)
    for _ in range(wheel.size - 2):
        wheel.advance()
    await settle()
    assert conn.transport.take() == []
    wheel.advance()
    await settle()
    assert conn.transport.take() == [{}], "a server ping is an empty reply"
    assert conn.client.session.awaiting_pong


async def test_no_pong_disconnects_with_3012(node: Node) -> None:
    wheel = PingWheel(1, 0.5)
    conn = await connected(node)
    wheel.add(conn.client)
    for _ in range(wheel.size - 1 + wheel.pong_lag - 1):
        wheel.advance()
    assert conn.client.session.awaiting_pong
    assert conn.closed_with is None
    wheel.advance()
    assert conn.closed_with == 3012
    assert conn.transport.close_reason == "no pong"
    assert node.hub.client(conn.client.id) is None


async def test_pong_in_time_keeps_the_connection(node: Node) -> None:
    wheel = PingWheel(1, 0.5)
    conn = await connected(node)
    wheel.add(conn.client)
    for _ in range(wheel.size - 1):
        wheel.advance()
    await settle()
    await conn.send(b"{}")
    assert not conn.client.session.awaiting_pong
    for _ in range(wheel.size):  # past the pong check, up to the next ping
        wheel.advance()
    await settle()
    assert conn.closed_with is None
    assert conn.transport.take() == [{}], "the next ping comes one interval later"


async def test_removed_client_is_not_pinged(node: Node) -> None:
    wheel = PingWheel(1, 0.5)
    conn = await connected(node)
    wheel.add(conn.client)
    wheel.remove(conn.client)
    assert conn.client.ping_slot == -1
    wheel.remove(conn.client)  # twice is fine
    for _ in range(3 * wheel.size):
        wheel.advance()
    await settle()
    assert conn.transport.frames == []
    assert conn.closed_with is None


async def test_clients_are_spread_over_slots(node: Node) -> None:
    wheel = PingWheel(1, 0.5)
    first = await connected(node)
    wheel.add(first.client)
    wheel.advance()
    second = await connected(node)
    wheel.add(second.client)
    assert first.client.ping_slot != second.client.ping_slot
    for _ in range(wheel.size - 2):
        wheel.advance()
    await settle()
    assert (len(first.transport.take()), len(second.transport.take())) == (1, 0)
    wheel.advance()
    await settle()
    assert (len(first.transport.take()), len(second.transport.take())) == (0, 1)


async def test_running_wheel_pings_and_disconnects_in_real_time(node: Node) -> None:
    wheel = PingWheel(0.2, 0.1)  # ticks of 20 ms
    conn = await connected(node)
    wheel.add(conn.client)
    wheel.start()
    wheel.start()  # idempotent
    try:
        await asyncio.sleep(0.25)
        assert conn.client.session.awaiting_pong, "pinged after one interval"
        assert conn.closed_with is None
        await asyncio.sleep(0.2)
        assert conn.closed_with == 3012
    finally:
        await wheel.stop()
        await wheel.stop()
