"""Blast radius: while each hostile client of the transport does its worst (and then all of
them at once), a canary on the same node keeps receiving its publications and new clients
keep connecting (`canary_watching` checks it every few hundred milliseconds)."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.adversarial.hostile import (
    CLOSE,
    CONTINUATION,
    PING,
    TEXT,
    RawWebSocket,
    canary_watching,
    frame_bytes,
    http_exchange,
    open_socket,
    open_sse,
)
from tests.conftest import OPEN_CHANNEL, ServerProcess
from tests.integration.support.api import api_call

ROUNDS = 3
Actor = Callable[[ServerProcess], Awaitable[None]]


async def _connected(server: ServerProcess, **options: Any) -> RawWebSocket:
    ws = await RawWebSocket.open(server, local_ip="127.0.0.9", **options)
    await ws.connect(server.token("hostile"))
    return ws


async def ping_flood(server: ServerProcess) -> None:
    ws = await _connected(server, rcvbuf=4096)
    chunk = frame_bytes(PING, b"p" * 125) * 8000
    for _ in range(10):
        await ws.send(chunk)
    ws.abort()


async def fragment_floods(server: ServerProcess) -> None:
    for piece in (b"", b"  "):
        ws = await _connected(server)
        await ws.send_frame(TEXT, b"{", fin=False)
        with contextlib.suppress(ConnectionError):
            await ws.send(frame_bytes(CONTINUATION, piece, fin=False) * 20_000)
        assert await ws.close_code() == 1009


async def unfinished_messages(server: ServerProcess) -> None:
    sockets = [await _connected(server) for _ in range(10)]
    for ws in sockets:
        await ws.send_frame(TEXT, b'{"id":', fin=False)
    assert [await ws.close_code() for ws in sockets] == [1008] * len(sockets)


async def bad_frames(server: ServerProcess) -> None:
    for _ in range(ROUNDS):
        ws = await _connected(server)
        await ws.send_frame(TEXT, b"{}", rsv1=True)
        assert await ws.close_code() == 1002
        ws = await _connected(server)
        await ws.send_frame(CLOSE, struct.pack("!H", 5000))
        assert await ws.close_code() == 1002


async def bad_heads(server: ServerProcess) -> None:
    heads = [
        b"GET / HTTP/1.1\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: ²\r\n\r\n".encode(),
        bytes(range(256)) + b"\r\n\r\n",
        b"GET http://[::1/ HTTP/1.1\r\n\r\n",
    ]
    for _ in range(ROUNDS):
        for head in heads:
            await http_exchange(server, head)


async def idle_crowd(server: ServerProcess) -> None:
    """Up to the per-IP cap of idle sockets, and many more refused."""
    opened = []
    for _ in range(60):
        opened.append(await open_socket(server, local_ip="127.0.0.10"))
    await asyncio.sleep(1.0)
    for _, writer in opened:
        writer.transport.abort()


async def keyless_uploads(server: ServerProcess) -> None:
    async def upload() -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", server.api_port)
        writer.write(b"POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            for _ in range(16):
                writer.write(b"x" * 65536)
                await writer.drain()
        writer.transport.abort()

    await asyncio.gather(*(upload() for _ in range(20)))


async def sse_non_readers(server: ServerProcess) -> None:
    streams = []
    for i in range(5):
        token = server.token(f"sse{i}", channels=["flood"])
        streams.append(await open_sse(server, token, rcvbuf=4096, local_ip="127.0.0.11"))
    pad = "x" * 65536
    for n in range(8):
        commands = [{"publish": {"channel": "flood", "data": {"n": n, "pad": pad}}}] * 16
        await api_call(server, "batch", {"commands": commands})
    for _, _, writer in streams:
        writer.transport.abort()


ACTORS: dict[str, Actor] = {
    "ping flood": ping_flood,
    "fragment floods": fragment_floods,
    "unfinished messages": unfinished_messages,
    "bad frames": bad_frames,
    "bad heads": bad_heads,
    "idle crowd": idle_crowd,
    "keyless uploads": keyless_uploads,
    "sse non-readers": sse_non_readers,
}


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory(
        {
            "channel": OPEN_CHANNEL,
            "client_connections_per_ip": 30,
            "client_message_timeout": 1.0,
            "client_close_timeout": 1.0,
            "client_queue_max_size": 262_144,
            "connection_rate_per_ip": 0,
            "log_level": "warning",
        }
    )


@pytest.mark.parametrize("name", [*ACTORS, "all at once"])
async def test_canary_does_not_notice(server: ServerProcess, name: str) -> None:
    actors = list(ACTORS.values()) if name == "all at once" else [ACTORS[name]]
    async with canary_watching(server) as canary:
        await asyncio.gather(*(actor(server) for actor in actors))
    assert canary.rounds >= 2
    log = server.log()
    assert "Traceback" not in log and "Fatal error" not in log, log[-3000:]
