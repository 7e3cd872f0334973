"""Hostile WebSocket frames against a real `tidings serve`: reserved bits, bad close codes,
old protocol versions, fragment floods, unfinished messages and ping floods.

Each case must end with the close code RFC 6455 asks for (or bounded memory),
while the server stays up and other clients do not notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import Callable
from typing import Any

import pytest

from tests.adversarial.hostile import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    RawWebSocket,
    canary_watching,
    frame_bytes,
    rss_kib,
)
from tests.conftest import OPEN_CHANNEL, ServerProcess
from tests.integration.support.ws import STEP


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory(
        {"channel": OPEN_CHANNEL, "client_message_timeout": 1.0, "log_level": "warning"}
    )


async def connected(server: ServerProcess, **options: Any) -> RawWebSocket:
    ws = await RawWebSocket.open(server, **options)
    assert ws.status == 101, ws.head
    reply = await ws.connect(server.token("hostile"))
    assert "connect" in reply, reply
    return ws


def command(command_id: int, **request: Any) -> bytes:
    return json.dumps({"id": command_id, **request}).encode()


async def reply_to(ws: RawWebSocket, command_id: int) -> dict[str, Any]:
    while True:
        opcode, payload = await ws.read_frame()
        assert opcode != CLOSE, f"closed: {payload!r}"
        if opcode == TEXT:
            for line in payload.split(b"\n"):
                message: dict[str, Any] = json.loads(line)
                if message.get("id") == command_id:
                    return message


# --- reserved bits, close codes, versions ---------------------------------------------


@pytest.mark.parametrize("opcode", [TEXT, BINARY, PING])
async def test_reserved_bit_closes_1002(server: ServerProcess, opcode: int) -> None:
    ws = await connected(server)
    payload = command(2, ping={}) if opcode != PING else b"x"
    await ws.send_frame(opcode, payload, rsv1=True)
    assert await ws.close_code() == 1002
    assert server.proc.poll() is None


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
async def test_invalid_close_code_is_answered_1002(server: ServerProcess, code: int) -> None:
    ws = await connected(server)
    await ws.send_frame(CLOSE, struct.pack("!H", code) + b"bye")
    assert await ws.close_code() == 1002


@pytest.mark.parametrize("code", [1000, 1001, 1011, 3000, 4999])
async def test_valid_close_code_is_echoed(server: ServerProcess, code: int) -> None:
    ws = await connected(server)
    await ws.send_frame(CLOSE, struct.pack("!H", code) + b"bye")
    assert await ws.close_code() == code


async def test_empty_close_is_answered_1000(server: ServerProcess) -> None:
    ws = await connected(server)
    await ws.send_frame(CLOSE)
    assert await ws.close_code() == 1000


@pytest.mark.parametrize("version", ["8", "7", "12", "14", ""])
async def test_websocket_version_other_than_13_is_426(server: ServerProcess, version: str) -> None:
    ws = await RawWebSocket.open(server, version=version)
    assert ws.status == 426, ws.head
    assert "Sec-WebSocket-Version: 13" in ws.head


# --- fragments ------------------------------------------------------------------------


async def test_fragmented_message_is_assembled(server: ServerProcess) -> None:
    ws = await connected(server)
    body = command(5, publish={"channel": "news", "data": {"text": "x" * 20_000}})
    pieces = [body[i : i + 4096] for i in range(0, len(body), 4096)]
    await ws.send_frame(TEXT, pieces[0], fin=False)
    await ws.send_frame(PING, b"between fragments")  # control frames may interleave
    for piece in pieces[1:-1]:
        await ws.send_frame(CONTINUATION, piece, fin=False)
    await ws.send_frame(CONTINUATION, pieces[-1])
    assert (await ws.read_frame()) == (PONG, b"between fragments")
    reply = await reply_to(ws, 5)
    assert "error" not in reply, reply


async def test_uni_websocket_connect_request_may_be_fragmented(server: ServerProcess) -> None:
    ws = await RawWebSocket.open(server, path="/connection/uni_websocket")
    assert ws.status == 101
    request = json.dumps({"token": server.token("uni")}).encode()
    third = len(request) // 3
    await ws.send_frame(TEXT, request[:third], fin=False)
    await ws.send_frame(CONTINUATION, request[third : 2 * third], fin=False)
    await ws.send_frame(CONTINUATION, request[2 * third :])
    opcode, payload = await ws.read_frame()
    assert opcode == TEXT and "connect" in json.loads(payload.split(b"\n")[0]), payload


async def test_empty_continuation_frames_count_towards_the_limit(server: ServerProcess) -> None:
    """65536 bytes / 64 per fragment: about a thousand empty fragments, never a million."""
    ws = await connected(server)
    await ws.send_frame(TEXT, b'{"id":2,', fin=False)
    with contextlib.suppress(ConnectionError):
        await ws.send(frame_bytes(CONTINUATION, b"", fin=False) * 5000)
    assert await ws.close_code() == 1009


async def test_tiny_fragments_are_refused_and_cost_little(server: ServerProcess) -> None:
    """A 64 KiB message in 2-byte fragments, on 30 connections, left unfinished."""
    sockets = [await connected(server) for _ in range(30)]
    before = rss_kib(server)
    flood = frame_bytes(CONTINUATION, b"  ", fin=False) * 32_000
    for ws in sockets:
        await ws.send_frame(TEXT, b"{", fin=False)
        with contextlib.suppress(ConnectionError):
            await ws.send(flood)
    codes = [await ws.close_code() for ws in sockets]
    growth_mib = (rss_kib(server) - before) / 1024
    assert codes == [1009] * len(sockets)
    assert growth_mib < 15, f"server grew {growth_mib:.1f} MiB for 30 fragmented messages"


async def test_unfinished_fragmented_message_times_out_1008(server: ServerProcess) -> None:
    ws = await connected(server)
    await ws.send_frame(TEXT, b'{"id":2,', fin=False)
    assert await ws.close_code(within=STEP) == 1008


async def test_new_message_inside_a_fragmented_one_closes_1002(server: ServerProcess) -> None:
    ws = await connected(server)
    await ws.send_frame(TEXT, b'{"id":2,', fin=False)
    await ws.send_frame(TEXT, command(3, ping={}))
    assert await ws.close_code() == 1002


async def test_continuation_without_a_message_closes_1002(server: ServerProcess) -> None:
    ws = await connected(server)
    await ws.send_frame(CONTINUATION, command(3, ping={}))
    assert await ws.close_code() == 1002


# --- pings ----------------------------------------------------------------------------


async def test_pings_are_answered(server: ServerProcess) -> None:
    ws = await connected(server)
    await ws.send_frame(PING, b"hello")
    assert await ws.read_frame() == (PONG, b"hello")


async def test_ping_flood_from_a_client_that_never_reads_is_bounded(
    server: ServerProcess,
) -> None:
    """40 MB of pings whose pongs are never read: the server does not keep the pongs."""
    async with canary_watching(server):
        ws = await connected(server, rcvbuf=4096)
        before = rss_kib(server)
        chunk = frame_bytes(PING, b"p" * 124 + b"0") * 8_000  # about 1 MB
        for _ in range(40):
            await ws.send(chunk)
        await ws.send_frame(PING, b"p" * 124 + b"!")
        # The server has read all of it once it answers a command (replies come in order).
        await ws.send_frame(TEXT, command(9, ping={}))
        await asyncio.sleep(1.0)
        growth_mib = (rss_kib(server) - before) / 1024
        assert growth_mib < 16, f"server grew {growth_mib:.1f} MiB for unread pongs"
        # Reading now, the client gets the pongs that fitted, the latest ping's pong
        # and its reply: the connection was never broken.
        pongs: list[bytes] = []
        async with asyncio.timeout(30):
            while True:
                opcode, payload = await ws.read_frame(within=30)
                if opcode == PONG:
                    pongs.append(payload)
                elif opcode == TEXT and b'"id":9' in payload:
                    break
                assert opcode != CLOSE, payload
        assert pongs[-1].endswith(b"!"), "the latest ping was not answered"
        assert len(pongs) < 40 * 8_000, "every pong was kept"
