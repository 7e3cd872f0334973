"""Connection expiry: one timer per second of expiry, shared by the connections due then."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from tidings.core.client import Client
from tidings.core.deadlines import Deadlines
from tidings.core.node import Node
from tidings.testing import MemoryTransport


async def test_items_due_the_same_second_share_a_timer() -> None:
    fired: list[str] = []
    deadlines: Deadlines[str] = Deadlines(fired.append)
    now = int(time.time())
    deadlines.add("a", now - 1)
    deadlines.add("b", now - 1)
    deadlines.add("c", now - 1)
    deadlines.add("c", now - 1)
    deadlines.add("later", now + 3600)
    assert len(deadlines) == 4 and len(deadlines._timers) == 2
    deadlines.discard("b", now - 1)
    deadlines.discard("nobody", now - 1)
    await asyncio.sleep(0.01)
    assert sorted(fired) == ["a", "c"]
    assert len(deadlines) == 1
    deadlines.discard("later", now + 3600)
    assert len(deadlines) == 0 and not deadlines._timers, "an emptied second keeps no timer"
    deadlines.close()


async def test_discard_down_to_one_item_keeps_it_due() -> None:
    fired: list[str] = []
    deadlines: Deadlines[str] = Deadlines(fired.append)
    at = int(time.time()) - 1
    deadlines.add("a", at)
    deadlines.add("b", at)
    deadlines.discard("a", at)
    assert deadlines._due[at] == "b"
    await asyncio.sleep(0.01)
    assert fired == ["b"]


async def test_client_expiry_is_registered_moved_and_dropped(
    node_factory: Callable[..., Node],
) -> None:
    node = node_factory()
    client = Client(node, MemoryTransport(), node.codec)
    later = int(time.time()) + 3600
    client.set_expiry(later)
    assert len(node.expiries) == 1
    client.set_expiry(later + 60)  # refreshed
    assert node.expiries._due == {later + 60: client}
    client.set_expiry(0)
    assert len(node.expiries) == 0
    client.set_expiry(later)
    client.transport_closed()
    assert len(node.expiries) == 0, "a closed client is not kept until its token expires"
    client.set_expiry(later)
    assert len(node.expiries) == 0


async def test_expired_client_is_closed_3005(node_factory: Callable[..., Node]) -> None:
    node = node_factory()
    transport = MemoryTransport()
    client = Client(node, transport, node.codec)
    client.set_expiry(int(time.time()) - 1)
    await asyncio.sleep(0.01)
    assert client.closed and transport.close_code == 3005
