"""A client that sends big commands faster than they complete (durable publishes with an
fsync each): what waits for processing is bounded in bytes, not only in count."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

from tests.adversarial.hostile import TEXT, RawWebSocket, canary_watching, frame_bytes, rss_kib
from tests.conftest import OPEN_CHANNEL, ServerProcess


async def test_big_commands_sent_faster_than_they_complete_are_cut_off(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(
        {
            "channel": OPEN_CHANNEL,
            "client_command_rate": 0,
            "log_level": "warning",
            "namespaces": {"d": {**OPEN_CHANNEL, "durable": True, "fsync": "always"}},
        }
    )
    pad = "x" * 60_000
    frames = b"".join(
        frame_bytes(
            TEXT,
            json.dumps({"id": 10 + n, "publish": {"channel": "d:x", "data": {"p": pad}}}).encode(),
        )
        for n in range(300)
    )
    async with canary_watching(server):
        sockets = []
        for i in range(3):
            ws = await RawWebSocket.open(server)
            await ws.connect(server.token(f"fast{i}"))
            sockets.append(ws)
        before = peak = rss_kib(server)

        async def blast(ws: RawWebSocket) -> int | None:
            with contextlib.suppress(ConnectionError):
                await ws.send(frames)
            return await ws.close_code(within=30)

        blasts = asyncio.gather(*(blast(ws) for ws in sockets))
        while not blasts.done():
            peak = max(peak, rss_kib(server))
            await asyncio.sleep(0.05)
        codes = await blasts
    growth_mib = (peak - before) / 1024
    # 3013, or a reset: the server closes with 18 MB of unread input behind the close frame.
    assert set(codes) <= {3013, None}, codes
    assert growth_mib < 25, f"server grew {growth_mib:.1f} MiB holding 54 MB of commands"
