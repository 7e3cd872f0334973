"""Command replies count towards the outbox bound: asking is no way around 3008.

A client that never reads but keeps asking for a large history (within its
rate limit) used to grow the server by the size of every reply. Now each
reply goes through the same bounded outbox as pushes: once the bytes held
for the client exceed `client_queue_max_size`, it is disconnected as slow
(3008) and the server's memory stays flat.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from typing import Any

from tests.adversarial.canary import Canary
from tests.conftest import ServerProcess
from tests.core.conftest import Conn, make_settings
from tests.integration.support.api import api_body, refusal_counters
from tests.integration.support.ws import connected_ws, open_ws
from tests.integration.test_flow_control import rss_kib
from tidings.core.node import Node

CHANNEL = "big:history"
#: About 0.9 MiB of history: one reply fits in the default 1 MiB outbox bound.
PUBLICATIONS, PAD = 900, 1000
#: Growth the test gives up at (the old code passed it in seconds) and the bound it checks.
GIVE_UP_MIB, BOUND_MIB = 400, 150


def _settings() -> dict[str, Any]:
    return {
        "client_ping_interval": 60,
        "client_pong_timeout": 10,
        "client_history_rate": 1000,
        "client_history_burst": 1000,
        "channel": {"allow_subscribe_for_client": True},
        "namespaces": {
            "big": {
                "history_size": PUBLICATIONS,
                "history_ttl": "1h",
                "allow_history_for_client": True,
            }
        },
    }


async def _fill(server: ServerProcess) -> None:
    pad = "x" * PAD
    for start in range(0, PUBLICATIONS, 100):
        commands = [
            {"publish": {"channel": CHANNEL, "data": {"n": n, "pad": pad}}}
            for n in range(start, start + 100)
        ]
        await api_body(server, "batch", {"commands": commands})


async def _slow_disconnects(server: ServerProcess) -> float:
    return (await refusal_counters(server)).get("refused.disconnected_slow", 0.0)


async def test_a_client_asking_history_without_reading_is_cut_off_3008(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(_settings())
    await _fill(server)
    # The hostile reader: a tiny kernel receive buffer, and it never reads after connect.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    hostile = await open_ws(server.ws_url, sock=sock, max_queue=1)
    await connected_ws(server.ws_url, server.token("hostile"), hostile)

    async with Canary(server) as canary:
        rss_before = rss_kib(server)
        growth_mib = 0.0
        command_id = 10
        cut_off = False
        for _ in range(40):
            lines = []
            for _ in range(10):
                request = {"channel": CHANNEL, "limit": -1}
                lines.append(json.dumps({"id": command_id, "history": request}))
                command_id += 1
            try:
                await hostile.send("\n".join(lines))
            except Exception:  # the server closed on us: that is the point
                cut_off = True
            await asyncio.sleep(0.2)
            growth_mib = max(growth_mib, (rss_kib(server) - rss_before) / 1024)
            if cut_off or await _slow_disconnects(server) >= 1 or growth_mib > GIVE_UP_MIB:
                break
        await asyncio.sleep(0.5)
        growth_mib = max(growth_mib, (rss_kib(server) - rss_before) / 1024)
        slow = await _slow_disconnects(server)
        await canary.check(min_rounds=2)
    hostile.transport.abort()
    print(f"server RSS growth with the non-reading client: {growth_mib:.1f} MiB")
    assert growth_mib < BOUND_MIB, f"server RSS grew by {growth_mib:.0f} MiB for one reader"
    assert slow >= 1, "the non-reading client was never disconnected as slow (3008)"
    assert server.proc.poll() is None
    assert "Traceback" not in server.log()


# --- an inbox replay larger than the bound: the newest that fit, the rest by history ---


async def test_an_inbox_replay_larger_than_the_bound_starts_later_and_pages() -> None:
    node = Node(
        make_settings(
            personal_channel=True,
            personal_channel_durable=False,
            client_queue_max_size=8192,
        )
    )
    try:
        data = b'{"text":"' + b"x" * 1000 + b'"}'
        for _ in range(20):  # 20 KB waiting in the inbox, more than twice the bound
            await node.publish("#alice", data)
        conn = Conn(node)
        reply = await conn.connect("alice")
        assert conn.closed_with is None, "a large inbox must not lock its user out (3008)"
        inbox = reply["connect"]["subs"]["#alice"]
        offsets = [p["offset"] for p in inbox["publications"]]
        # Recovered: as from Centrifugo, the offset asked from (0, omitted); the
        # publications bring the client to the top.
        assert inbox["recovered"] and "offset" not in inbox
        assert 0 < len(offsets) < 20 and offsets == list(range(21 - len(offsets), 21))
        assert node.counters["unrecovered_reply_size"] == 0
        # The user pages through what was left out, acking as it goes.
        since = 0
        paged: list[int] = []
        while since < offsets[0] - 1:
            request = {"channel": "#alice", "limit": 4, "since": {"offset": since}}
            page = await conn.call({"id": 10 + since, "history": request})
            got = [p["offset"] for p in page["history"]["publications"]]
            paged += got
            since = got[-1]
            ack = {"method": "ack", "data": {"channel": "#alice", "offset": since}}
            assert "error" not in await conn.call({"id": 1000 + since, "rpc": ack})
        assert paged[: offsets[0] - 1] == list(range(1, offsets[0]))
    finally:
        await node.stop()
