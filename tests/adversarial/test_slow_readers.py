"""Clients that never read, on WebSocket and SSE: cut off as slow (3008), and their sockets
dropped `client_close_timeout` later instead of lingering forever with full buffers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.adversarial.hostile import (
    RawWebSocket,
    canary_watching,
    open_fds,
    open_sse,
    rss_kib,
)
from tests.conftest import OPEN_CHANNEL, ServerProcess
from tests.integration.support.api import api_call
from tests.integration.support.ws import STEP

FLOOD = "flood"
PAD = "x" * 65536


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory(
        {
            "channel": {**OPEN_CHANNEL, "history_size": 0, "history_ttl": 0},
            "client_queue_max_size": 262_144,
            "client_close_timeout": 1.0,
            "personal_channel": False,
            "log_level": "warning",
        }
    )


async def flood(server: ServerProcess, mib: int) -> None:
    """About `mib` MiB of publications into FLOOD."""
    for start in range(0, mib * 16, 16):
        commands = [
            {"publish": {"channel": FLOOD, "data": {"n": start + i, "pad": PAD}}} for i in range(16)
        ]
        await api_call(server, "batch", {"commands": commands})


async def until_fds(server: ServerProcess, at_most: int) -> int:
    async with asyncio.timeout(STEP * 2):
        while True:
            fds = open_fds(server)
            if fds <= at_most:
                return fds
            await asyncio.sleep(0.1)


async def ws_non_reader(server: ServerProcess, user: str) -> Any:
    ws = await RawWebSocket.open(server, rcvbuf=4096)
    assert "connect" in await ws.connect(server.token(user))
    await ws.send_json({"id": 2, "subscribe": {"channel": FLOOD}})
    return ws


async def sse_non_reader(server: ServerProcess, user: str) -> Any:
    status, _, writer = await open_sse(server, server.token(user, channels=[FLOOD]), rcvbuf=4096)
    assert status == 200
    return writer


@pytest.mark.parametrize("opener", [ws_non_reader, sse_non_reader], ids=["websocket", "sse"])
async def test_non_readers_are_dropped_and_cost_bounded_memory(
    server: ServerProcess, opener: Callable[..., Any]
) -> None:
    async with canary_watching(server):
        baseline = open_fds(server)
        before = rss_kib(server)
        readers = [await opener(server, f"slow{i}") for i in range(10)]
        await asyncio.sleep(0.3)  # subscribed
        assert open_fds(server) >= baseline + 10
        await flood(server, 24)
        growth_mib = (rss_kib(server) - before) / 1024
        # Closed as slow, and the sockets with their unsent bytes gone: back to the baseline.
        await until_fds(server, baseline)
        assert growth_mib < 40, f"server grew {growth_mib:.1f} MiB for 10 non-readers"
        for reader in readers:
            reader.abort() if isinstance(reader, RawWebSocket) else reader.transport.abort()
