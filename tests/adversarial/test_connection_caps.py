"""Idle and half-open sockets on the client port: capped per IP and in total before the
request head arrives, timed out when the head does not come, and counted on every path.

Linux routes all of 127.0.0.0/8 to loopback, so binding the client side to
127.0.0.x gives each hostile crowd its own IP.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.adversarial.hostile import (
    CLOSE,
    TEXT,
    RawWebSocket,
    canary_watching,
    health,
    open_fds,
    open_socket,
    open_sse,
    status_of,
)
from tests.conftest import (
    OPEN_CHANNEL,
    ServerProcess,
    _wait_ready,
    free_port,
    server_config,
    write_toml,
)
from tests.integration.support.api import api_call
from tests.integration.support.ws import STEP

Sockets = list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]


@pytest.fixture
async def sockets() -> Any:
    opened: Sockets = []
    yield opened
    for _, writer in opened:
        writer.transport.abort()


async def refused_at_once(server: ServerProcess, local_ip: str) -> int:
    """Open a socket and send nothing: the status the server answers with."""
    reader, writer = await open_socket(server, local_ip=local_ip)
    try:
        async with asyncio.timeout(STEP):
            return status_of(await reader.read(4096))
    finally:
        writer.transport.abort()


async def idle(server: ServerProcess, sockets: Sockets, count: int, ips: Callable[[int], str]):
    for i in range(count):
        sockets.append(await open_socket(server, local_ip=ips(i)))


async def test_idle_sockets_from_one_ip_are_capped_before_the_head(
    server_factory: Callable[..., ServerProcess], sockets: Sockets
) -> None:
    server = server_factory(
        {
            "channel": OPEN_CHANNEL,
            "client_connections_per_ip": 50,
            "client_head_timeout": 60,
            "connection_rate_per_ip": 0,
        }
    )
    async with canary_watching(server):
        fds_before = open_fds(server)
        await idle(server, sockets, 50, lambda i: "127.0.0.2")
        for _ in range(100):  # one more IP-worth of sockets is refused, each at once
            assert await refused_at_once(server, "127.0.0.2") == 429
        assert await health(server) == 200
        assert open_fds(server) - fds_before < 60
        # Another IP is not affected.
        other = await RawWebSocket.open(server, local_ip="127.0.0.3")
        assert other.status == 101
        other.abort()
        # Once the idle sockets go, the IP may connect again.
        for _, writer in sockets:
            writer.transport.abort()
        sockets.clear()
        async with asyncio.timeout(STEP):
            while (ws := await RawWebSocket.open(server, local_ip="127.0.0.2")).status != 101:
                ws.abort()
                await asyncio.sleep(0.05)
        ws.abort()
    text = server.log()
    assert "Too many open files" not in text and "Traceback" not in text, text[-2000:]


async def test_total_cap_refuses_with_503_and_keeps_the_node_serving(
    server_factory: Callable[..., ServerProcess], sockets: Sockets
) -> None:
    server = server_factory(
        {
            "channel": OPEN_CHANNEL,
            "client_connections_max": 60,
            "client_connections_per_ip": 0,
            "client_head_timeout": 60,
            "connection_rate_per_ip": 0,
        }
    )
    async with canary_watching(server, connect_each_round=False):
        # The canary holds one slot; idle crowds from many IPs take the rest.
        await idle(server, sockets, 59, lambda i: f"127.0.1.{i + 1}")
        for i in range(20):
            assert await refused_at_once(server, f"127.0.2.{i + 1}") == 503
        assert await health(server) == 200
        await api_call(server, "publish", {"channel": "other", "data": {}})
        for _, writer in sockets:
            writer.transport.abort()
        sockets.clear()
        async with asyncio.timeout(STEP):
            while (ws := await RawWebSocket.open(server, local_ip="127.0.2.1")).status != 101:
                ws.abort()
                await asyncio.sleep(0.05)
        ws.abort()


@pytest.fixture
def limited_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server whose process may open only 400 descriptors."""
    port, api_port = free_port(), free_port()
    config = tmp_path / "limited.toml"
    settings = {"channel": OPEN_CHANNEL, "client_head_timeout": 60, "connection_rate_per_ip": 0}
    write_toml(config, server_config(tmp_path, port, api_port, settings))
    log_path = tmp_path / "limited.log"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (400, 400))

    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tidings", "serve", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=limit,  # noqa: PLW1509 - nothing else runs threads here
        )
    server = ServerProcess(proc, port, api_port, log_path)
    _wait_ready(server)
    yield server
    server.stop()


async def test_automatic_total_cap_keeps_descriptors_for_the_api(
    limited_server: ServerProcess, sockets: Sockets
) -> None:
    """Descriptor limit 400: client sockets stop at 320, the API and the store keep working."""
    server = limited_server
    for i in range(420):
        sockets.append(await open_socket(server, local_ip=f"127.0.3.{i % 200 + 1}"))

    async def answer(reader: asyncio.StreamReader) -> int | None:
        # Refusals are written when the socket is accepted; accepted sockets hear nothing.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STEP):
                return status_of(await reader.read(4096))
        return None

    answers = await asyncio.gather(*(answer(reader) for reader, _ in sockets))
    refused = [status for status in answers if status is not None]
    assert set(refused) == {503}, refused
    assert len(refused) == 420 - (400 - 80), len(refused)
    assert await health(server) == 200
    await api_call(server, "publish", {"channel": "news", "data": {"ok": True}})
    assert "Too many open files" not in server.log()


async def test_head_timeout_answers_408(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory({"client_head_timeout": 1.0})
    reader, writer = await open_socket(server)

    # A slow loris: a byte now and then, never a whole head.
    async def dribble() -> None:
        for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000:
            writer.write(bytes([byte]))
            await asyncio.sleep(0.1)

    dribbler = asyncio.create_task(dribble())
    try:
        async with asyncio.timeout(STEP):
            answer = await reader.read()
    finally:
        dribbler.cancel()
        writer.transport.abort()
    assert status_of(answer) == 408, answer


async def test_open_sse_streams_count_against_the_per_ip_cap(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(
        {"client_connections_per_ip": 3, "connection_rate_per_ip": 0, "personal_channel": False}
    )
    streams = [
        await open_sse(server, server.token(f"u{i}"), local_ip="127.0.0.6") for i in range(3)
    ]
    assert [status for status, _, _ in streams] == [200, 200, 200]
    status, _, refused = await open_sse(server, server.token("u4"), local_ip="127.0.0.6")
    refused.transport.abort()
    assert status == 429
    streams[0][2].transport.abort()
    async with asyncio.timeout(STEP):
        while (again := await open_sse(server, server.token("u5"), local_ip="127.0.0.6"))[0] != 200:
            again[2].transport.abort()
            await asyncio.sleep(0.05)
    again[2].transport.abort()
    for _, _, writer in streams[1:]:
        writer.transport.abort()


async def test_every_way_a_connection_ends_gives_its_slot_back(
    server_factory: Callable[..., ServerProcess],
) -> None:
    """Per-IP cap 4: after each kind of ending, four WebSockets from that IP still fit."""
    server = server_factory(
        {
            "channel": OPEN_CHANNEL,
            "client_connections_per_ip": 4,
            "connection_rate_per_ip": 0,
            "client_head_timeout": 0.5,
            "client_close_timeout": 1.0,
        }
    )
    ip = "127.0.0.7"

    async def exchange(request: bytes) -> bytes:
        reader, writer = await open_socket(server, local_ip=ip)
        writer.write(request)
        try:
            async with asyncio.timeout(STEP):
                return await reader.read()
        finally:
            writer.transport.abort()

    async def ws_client_closes() -> None:
        ws = await RawWebSocket.open(server, local_ip=ip)
        await ws.connect(server.token("a"))
        await ws.send_frame(CLOSE, b"\x03\xe8")
        assert await ws.close_code() == 1000

    async def ws_server_closes() -> None:
        ws = await RawWebSocket.open(server, local_ip=ip)
        await ws.connect(server.token("a"))
        await ws.send_frame(TEXT, b"not json")
        assert await ws.close_code() == 3501

    async def ws_peer_vanishes() -> None:
        ws = await RawWebSocket.open(server, local_ip=ip)
        ws.abort()

    async def sse_closed_by_client() -> None:
        status, _, writer = await open_sse(server, server.token("s"), local_ip=ip)
        assert status == 200
        writer.transport.abort()

    async def plain_requests() -> None:
        assert status_of(await exchange(b"GET /nothing HTTP/1.1\r\n\r\n")) == 404
        assert status_of(await exchange(b"GARBAGE\r\n\r\n")) == 400
        assert (
            status_of(await exchange(b"GET / HTTP/1.1\r\nContent-Length: \xd9\xa3\r\n\r\n")) == 400
        )
        bad_origin = b"GET /connection/websocket HTTP/1.1\r\nOrigin: https://evil.example\r\n"
        assert status_of(await exchange(bad_origin + b"Upgrade: websocket\r\n\r\n")) == 403
        old = await RawWebSocket.open(server, version="8", local_ip=ip)
        assert old.status == 426
        old.abort()
        assert status_of(await exchange(b"GET / HTTP/1.1\r\n")) == 408  # head timeout
        _, writer = await open_socket(server, local_ip=ip)
        writer.write(b"GET / HT")
        writer.transport.abort()  # reset in the middle of the head

    for ending in (ws_client_closes, ws_server_closes, ws_peer_vanishes, sse_closed_by_client):
        for _ in range(5):
            await ending()
    for _ in range(2):
        await plain_requests()

    held: list[RawWebSocket] = []
    async with asyncio.timeout(STEP * 2):
        while len(held) < 4:  # the last endings may still be on their way
            ws = await RawWebSocket.open(server, local_ip=ip)
            if ws.status == 101:
                held.append(ws)
            else:
                ws.abort()
                await asyncio.sleep(0.1)
    fifth = await RawWebSocket.open(server, local_ip=ip)
    assert fifth.status == 429
    for ws in [*held, fifth]:
        ws.abort()
    assert server.proc.poll() is None


async def test_ip_lists_and_rate_apply_before_the_head(
    server_factory: Callable[..., ServerProcess], sockets: Sockets
) -> None:
    server = server_factory(
        {"connection_rate_per_ip": 0.01, "connection_burst_per_ip": 3, "client_head_timeout": 60},
        args=["--client-ip-deny", "127.0.0.12/32"],
    )
    assert await refused_at_once(server, "127.0.0.12") == 403
    # Three idle sockets spend the burst (they are answered nothing); the fourth is refused.
    await idle(server, sockets, 3, lambda i: "127.0.0.13")
    assert await refused_at_once(server, "127.0.0.13") == 429
    other = await RawWebSocket.open(server, local_ip="127.0.0.14")
    other.abort()
    assert other.status == 101
