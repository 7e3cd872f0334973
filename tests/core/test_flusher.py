"""The flusher writes each marked client once per loop turn, coalescing its output."""

from __future__ import annotations

import asyncio

from tests.core.conftest import Conn, settle
from tidings.core.flusher import Flusher
from tidings.core.node import Node


async def test_one_frame_per_turn_for_many_messages(node: Node) -> None:
    conn = Conn(node)
    await conn.connect()
    flushes = node.flusher.flushes
    for n in range(5):
        conn.client.enqueue(b'{"n":%d}' % n)
    assert conn.transport.frames == [], "nothing is written before the loop turns"
    await settle()
    assert conn.transport.frames == [b'{"n":0}\n{"n":1}\n{"n":2}\n{"n":3}\n{"n":4}']
    assert node.flusher.flushes == flushes + 1


async def test_one_callback_for_many_clients(node: Node) -> None:
    conns = [Conn(node) for _ in range(3)]
    for c in conns:
        await c.connect()
    flushes = node.flusher.flushes
    for c in conns:
        c.client.enqueue(b"{}")
    await settle()
    assert node.flusher.flushes == flushes + 1
    assert [c.transport.frames for c in conns] == [[b"{}"]] * 3


async def test_marks_after_a_flush_schedule_another(node: Node) -> None:
    conn = Conn(node)
    await conn.connect()
    conn.client.enqueue(b"1")
    await settle()
    conn.client.enqueue(b"2")
    await settle()
    assert conn.transport.frames == [b"1", b"2"]


async def test_flusher_uses_the_given_loop(node: Node) -> None:
    loop = asyncio.get_running_loop()
    flusher = Flusher(loop)
    conn = Conn(node)
    await conn.connect()
    conn.client.outbox.push(b"x")
    flusher.mark(conn.client)
    flusher.mark(conn.client)
    assert flusher.flushes == 0
    await asyncio.sleep(0)
    assert flusher.flushes == 1
    assert conn.transport.frames == [b"x"], "a client marked twice is written once"
