"""Flow control on the client port, driven by raw WebSocket clients.

Server pings and pong deadlines (3012), the connect deadline (3502), slow
readers (3008, bounded server memory) and coalescing of pushes into frames.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import ServerProcess
from tests.integration.support.api import api_body
from tests.integration.support.ws import (
    STEP,
    connected_ws,
    expect_close,
    open_ws,
    parse_frame,
    recv_messages,
    recv_reply,
    subscribe,
)

OPEN: dict[str, Any] = {
    "history_size": 1000,
    "history_ttl": "5m",
    "allow_subscribe_for_client": True,
    "allow_publish_for_client": True,
}


# --- helpers -------------------------------------------------------------------------


def start(server_factory: Callable[..., ServerProcess], **settings: Any) -> ServerProcess:
    config: dict[str, Any] = {"channel": OPEN, "client_ping_interval": 25}
    config.update(settings)
    return server_factory(config)


def batch_replies(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The replies of a batch call (Centrifugo answers `{"replies": [...]}` unwrapped)."""
    replies: list[dict[str, Any]] = body.get("result", body)["replies"]
    return replies


def http_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))


def rss_kib(server: ServerProcess) -> int:
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def pub_data(messages: list[dict[str, Any]], channel: str) -> list[Any]:
    return [
        m["push"]["pub"]["data"]
        for m in messages
        if m.get("push", {}).get("channel") == channel and "pub" in m["push"]
    ]


# --- ping / pong -----------------------------------------------------------------------


async def test_client_that_answers_pings_stays_connected(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = start(server_factory, client_ping_interval=2, client_pong_timeout=1)
    ws, result = await connected_ws(server.ws_url, server.token("ponger"))
    assert result["ping"] == 2 and result["pong"] is True
    pings = 0
    next_id = 10
    started = time.monotonic()
    while time.monotonic() - started < 6.5:
        try:
            messages = await recv_messages(ws, 0.5, pong=False)
        except TimeoutError:
            continue
        for message in messages:
            assert message == {} or message.get("id") is not None, message
            if message == {}:
                pings += 1
                # Answer alone, or coalesced with a command in the same frame.
                if pings % 2:
                    await ws.send("{}")
                else:
                    next_id += 1
                    await ws.send("{}\n" + json.dumps({"id": next_id, "ping": {}}))
            else:
                assert "error" not in message, message
    assert pings >= 2, f"expected pings every 2s, got {pings} in 6.5s"
    # Still open and answering after more than 5 s.
    await ws.send(json.dumps({"id": 99, "ping": {}}))
    reply = await recv_reply(ws, 99, pong=False)
    assert "ping" in reply and "error" not in reply
    await ws.close()
    assert server.proc.poll() is None


async def test_client_that_does_not_answer_is_closed_3012(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = start(server_factory, client_ping_interval=2, client_pong_timeout=1)
    ws, _ = await connected_ws(server.ws_url, server.token("silent"))
    connected_at = time.monotonic()
    ping_at: float | None = None
    try:
        async with asyncio.timeout(8):
            while True:
                for message in parse_frame(await ws.recv()):
                    if message == {} and ping_at is None:
                        ping_at = time.monotonic()
    except ConnectionClosed as exc:
        closed_at = time.monotonic()
        assert exc.rcvd is not None, "closed without a close frame"
        assert exc.rcvd.code == 3012, exc.rcvd
    except TimeoutError:
        pytest.fail("a client that never answers pings was not disconnected")
    assert ping_at is not None, "closed without being pinged"
    # The ping comes about one interval after connect; the close about one pong timeout later.
    assert 1.0 <= ping_at - connected_at <= 3.5
    assert 0.7 <= closed_at - ping_at <= 2.5
    assert server.proc.poll() is None


async def test_late_pong_does_not_save_the_connection(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = start(server_factory, client_ping_interval=2, client_pong_timeout=1)
    ws, _ = await connected_ws(server.ws_url, server.token("late"))
    async with asyncio.timeout(STEP):
        while await recv_messages(ws, pong=False) != [{}]:
            pass
    await asyncio.sleep(1.8)  # well past the 1 s pong timeout, before the next ping is due
    # By now the server has closed the connection: the late pong cannot be sent.
    with pytest.raises(ConnectionClosed):
        await ws.send("{}")
    assert ws.close_code == 3012


async def test_client_that_stops_answering_is_closed_3012(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = start(server_factory, client_ping_interval=2, client_pong_timeout=1)
    ws, _ = await connected_ws(server.ws_url, server.token("quitter"))
    answered = 0
    async with asyncio.timeout(STEP * 2):
        while answered < 2:
            if await recv_messages(ws, pong=False) == [{}]:
                await ws.send("{}")
                answered += 1
    started = time.monotonic()
    assert await expect_close(ws, pong=False) == 3012
    # One more interval for the next ping, then the pong timeout.
    assert 1.5 <= time.monotonic() - started <= 4.5


# --- stale connections -----------------------------------------------------------------


async def test_socket_that_never_connects_is_closed_3502(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = start(server_factory, client_stale_close_delay=1)
    opened = time.monotonic()
    idle = await open_ws(server.ws_url)
    # A client that connects in time is not affected by the stale timer.
    prompt, _ = await connected_ws(server.ws_url, server.token("prompt"))
    assert await expect_close(idle, STEP, pong=False) == 3502
    elapsed = time.monotonic() - opened
    assert 0.8 <= elapsed <= 4.0, elapsed
    await asyncio.sleep(1.0)
    await prompt.send(json.dumps({"id": 7, "ping": {}}))
    assert "ping" in await recv_reply(prompt, 7, pong=False)
    await prompt.close()
    assert server.proc.poll() is None


# --- slow clients ----------------------------------------------------------------------


async def test_slow_client_is_disconnected_and_memory_bounded(
    server_factory: Callable[..., ServerProcess],
) -> None:
    queue_max = 2 * 1024 * 1024
    server = start(
        server_factory,
        client_ping_interval=120,
        client_pong_timeout=10,
        client_queue_max_size=queue_max,
        # The slow client reads what was buffered long after its cut: keep its socket.
        client_close_timeout=300,
        # No history: the server's memory is then only what it buffers for clients.
        namespaces={"fire": {"allow_subscribe_for_client": True}},
    )
    channel = "fire:hose"
    # The slow reader: a tiny kernel receive buffer, and it stops calling recv().
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    slow = await open_ws(server.ws_url, sock=sock, max_queue=1)
    await connected_ws(server.ws_url, server.token("slow"), slow)
    await subscribe(slow, channel)
    normal, _ = await connected_ws(server.ws_url, server.token("normal"))
    await subscribe(normal, channel)

    received: list[int] = []
    progress = asyncio.Event()

    async def read_normal() -> None:
        try:
            while True:
                for data in pub_data(parse_frame(await normal.recv()), channel):
                    received.append(data["n"])
                progress.set()
        finally:
            progress.set()

    async def until_received(count: int) -> None:
        while len(received) < count:
            if reader.done():
                reader.result()  # raises what stopped the normal client
                pytest.fail("the normal client stopped reading")
            progress.clear()
            await progress.wait()

    reader = asyncio.create_task(read_normal())
    pad = "x" * 64 * 1024
    per_batch, batches = 8, 200  # 1600 publications, about 100 MiB in all
    total = per_batch * batches
    rss_before = rss_kib(server)
    rss_peak = rss_before
    async with http_session() as http:
        for b in range(batches):
            commands = [
                {"publish": {"channel": channel, "data": {"n": b * per_batch + i, "pad": pad}}}
                for i in range(per_batch)
            ]
            body = await api_body(server, "batch", {"commands": commands}, http)
            replies = batch_replies(body)
            assert len(replies) == per_batch and all("error" not in r for r in replies), replies
            if b % 20 == 0:
                rss_peak = max(rss_peak, rss_kib(server))
            # Keep the normal reader within its own queue limit.
            async with asyncio.timeout(STEP):
                await until_received((b - 2) * per_batch)
    async with asyncio.timeout(15):
        await until_received(total)
    rss_peak = max(rss_peak, rss_kib(server))
    reader.cancel()

    assert received == list(range(total)), "the normal client missed publications"
    growth_mib = (rss_peak - rss_before) / 1024
    assert growth_mib < 50, f"server RSS grew by {growth_mib:.1f} MiB for one slow client"

    # The slow client now reads what was buffered for it: then the close, 3008.
    slow_seen: list[int] = []
    code: int | None = -1
    try:
        async with asyncio.timeout(15):
            while True:
                slow_seen += [d["n"] for d in pub_data(parse_frame(await slow.recv()), channel)]
    except ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd is not None else None
    assert code == 3008, f"slow client closed with {code}"
    assert len(slow_seen) < total, "the slow client was never cut off"
    assert slow_seen == list(range(len(slow_seen))), "slow client got a gap before the cut"

    # The normal client is still subscribed and served.
    async with http_session() as http:
        await api_body(server, "publish", {"channel": channel, "data": {"n": total}}, http)
    async with asyncio.timeout(STEP):
        while received[-1] != total:
            received += [d["n"] for d in pub_data(await recv_messages(normal, pong=False), channel)]
    await normal.close()
    assert server.proc.poll() is None


# --- coalescing ------------------------------------------------------------------------


async def test_pushes_coalesced_in_one_frame_are_all_delivered_in_order(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = start(server_factory)
    ws, _ = await connected_ws(server.ws_url, server.token("reader"))
    await subscribe(ws, "burst")
    count = 40
    commands = [{"publish": {"channel": "burst", "data": {"n": n}}} for n in range(count)]
    async with http_session() as http:
        replies = batch_replies(await api_body(server, "batch", {"commands": commands}, http))
        assert len(replies) == count and all("error" not in r for r in replies), replies
    frames: list[list[dict[str, Any]]] = []
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(STEP):
        while len(seen) < count:
            messages = await recv_messages(ws, pong=False)
            frames.append(messages)
            seen += [m["push"]["pub"] for m in messages if "push" in m]
    assert [pub["data"]["n"] for pub in seen] == list(range(count))
    offsets = [pub["offset"] for pub in seen]
    assert offsets == list(range(offsets[0], offsets[0] + count))
    # One batch is published in one loop turn: its pushes share frames.
    assert len(frames) < count, f"{count} pushes came in {len(frames)} frames"
    assert max(len(f) for f in frames) > 1
    await ws.close()


async def test_rapid_publishes_all_arrive_in_order(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = start(server_factory)
    ws, _ = await connected_ws(server.ws_url, server.token("reader"))
    await subscribe(ws, "rapid")
    count = 200

    async def publish_all() -> None:
        async with http_session() as http:
            for n in range(count):
                await api_body(server, "publish", {"channel": "rapid", "data": {"n": n}}, http)

    publisher = asyncio.create_task(publish_all())
    await asyncio.sleep(0.2)  # let pushes pile up unread so several share a frame
    seen: list[int] = []
    frames = 0
    async with asyncio.timeout(15):
        while len(seen) < count:
            seen += [d["n"] for d in pub_data(await recv_messages(ws, pong=False), "rapid")]
            frames += 1
    await publisher
    assert seen == list(range(count))
    assert frames <= count
    await ws.close()
