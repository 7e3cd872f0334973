"""`tidings serve --workers 3` with its private redis-server, driven by centrifuge-python.

Clients land on different workers (SO_REUSEPORT; `info` says which holds how
many); they get each other's publications, and presence and history answered
by each client's own worker agree. Durable publishes made on different
workers get one offset each, none lost, none twice, and outlive a restart.
SIGTERM drains every worker (an API call in flight completes, clients get
3001) and leaves no process behind.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from collections.abc import Callable

import redis

from tests.conftest import ServerProcess
from tests.integration.cluster_support import durable_redis, wait_for
from tests.integration.support.api import api_call
from tests.integration.support.sdk import TIMEOUT, connecting
from tests.integration.workers_support import (
    WORKER_SETTINGS,
    alive,
    clients_by_node,
    descendants,
    redis_pids,
    restart_supervisor,
    spread_clients,
    supervisors,  # noqa: F401  (fixture)
    wait_gone,
    worker_pids,
)
from tidings.testing.redis import RedisServer

NAMES = ["tw-w1", "tw-w2", "tw-w3"]


async def test_clients_on_different_workers_share_publications_presence_and_history(
    supervisors: Callable[..., ServerProcess],  # noqa: F811
) -> None:
    srv = supervisors({**WORKER_SETTINGS, "name": "tw"}, ["--workers", "3"])
    assert sorted(worker_pids(srv)) == NAMES
    assert len(redis_pids(srv)) == 1

    async def three_nodes() -> bool:
        return sorted(await clients_by_node(srv)) == NAMES

    await wait_for(three_nodes, "info to list the three workers", TIMEOUT)
    async with connecting(srv) as connect:
        conns, recs, _ = await spread_clients(srv, connect, "news")
        for n, conn in enumerate(conns):
            await conn.client.publish("news", {"from": n})
        everyone = list(range(len(conns)))
        for rec in recs:
            pubs = await rec.wait("publication", count=len(conns), within=TIMEOUT)
            assert [p.pub.data["from"] for p in pubs] == everyone
            assert [p.pub.offset for p in pubs] == [n + 1 for n in everyone]

        # Each client's own worker answers its presence and history requests: all agree.
        answers = set()
        for conn in conns:
            sub = conn.client.get_subscription("news")
            assert sub is not None
            presence = await sub.presence()
            history = await sub.history(limit=100)
            users = tuple(sorted(info.user for info in presence.clients.values()))
            offsets = tuple(p.offset for p in history.publications)
            answers.add((users, offsets, history.epoch))
        assert len(answers) == 1, answers
        users, offsets, _ = answers.pop()
        assert users == tuple(sorted(f"u{n}" for n in everyone))
        assert offsets == tuple(n + 1 for n in everyone)


async def test_durable_publishes_from_different_workers_get_one_offset_each(
    supervisors: Callable[..., ServerProcess],  # noqa: F811
) -> None:
    # `workers` in the file (not a flag), so that a restart runs three workers again.
    srv = supervisors({**WORKER_SETTINGS, "name": "tw", "workers": 3})
    per_client = 20
    async with connecting(srv) as connect:
        conns, recs, _ = await spread_clients(srv, connect, "d:log", count=6)
        await asyncio.gather(
            *(
                conn.client.publish("d:log", {"from": c, "n": n})
                for n in range(per_client)
                for c, conn in enumerate(conns)
            )
        )
        total = per_client * len(conns)
        expected = {(c, n) for c in range(len(conns)) for n in range(per_client)}
        for rec in recs:
            pubs = await rec.wait("publication", count=total, within=TIMEOUT)
            assert [p.pub.offset for p in pubs] == list(range(1, total + 1))
            assert {(p.pub.data["from"], p.pub.data["n"]) for p in pubs} == expected
        before = await api_call(srv, "history", {"channel": "d:log", "limit": -1})
    assert [p["offset"] for p in before["publications"]] == list(range(1, total + 1))
    assert {(p["data"]["from"], p["data"]["n"]) for p in before["publications"]} == expected

    # The private redis-server keeps durable channels in its append-only file.
    restart_supervisor(srv)
    after = await api_call(srv, "history", {"channel": "d:log", "limit": -1})
    assert after == before
    published = await api_call(srv, "publish", {"channel": "d:log", "data": {"after": 1}})
    assert published["offset"] == total + 1
    assert published["epoch"] == before["epoch"]


def _slow_history_call(srv: ServerProcess) -> socket.socket:
    """A connection with a history call whose ~6 MB answer waits for a reader that is slow."""
    body = json.dumps({"channel": "big", "limit": -1}).encode()
    head = (
        f"POST /api/history HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {srv.api_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32_768)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", srv.api_port))
    sock.sendall(head + body)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


async def test_sigterm_drains_every_worker_and_leaves_no_process(
    supervisors: Callable[..., ServerProcess],  # noqa: F811
) -> None:
    srv = supervisors({**WORKER_SETTINGS, "name": "tw"}, ["--workers", "3"])
    blob = "y" * 60_000
    for n in range(100):
        await api_call(srv, "publish", {"channel": "big", "data": {"n": n, "blob": blob}})
    children = descendants(srv.proc.pid)
    assert len(children) == 4  # three workers and redis-server
    async with connecting(srv) as connect:
        conns, _, _ = await spread_clients(srv, connect, "news", count=3)
        sock = _slow_history_call(srv)
        try:
            start = await asyncio.to_thread(sock.recv, 1000)
            srv.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + TIMEOUT
            while "stopping 3 workers" not in srv.log():
                assert time.monotonic() < deadline, srv.log()
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            assert srv.proc.poll() is None, "exited with a call in flight"
            response = start + await asyncio.to_thread(_read_all, sock)
        finally:
            sock.close()
        head, _, payload = response.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        result = json.loads(payload)["result"]
        assert [p["data"]["n"] for p in result["publications"]] == list(range(100))
        for conn in conns:
            (ctx,) = await conn.rec.wait("connecting", lambda c: c.code != 0, within=TIMEOUT)
            assert ctx.code == 3001
    assert await asyncio.to_thread(srv.proc.wait, 30) == 0, srv.log()
    await wait_gone(children)
    assert not any(alive(pid) for pid in children)
    assert "redis.sock" not in {p.name for p in srv.log_path.parent.glob("data/redis/*")}


async def test_with_the_redis_engine_workers_use_the_configured_redis(
    supervisors: Callable[..., ServerProcess],  # noqa: F811
    redis_factory: Callable[..., RedisServer],
) -> None:
    external = durable_redis(redis_factory)
    settings = {**WORKER_SETTINGS, "name": "tw", "engine": "redis", "redis_address": [external.url]}
    srv = supervisors(settings, ["--workers", "2"])
    assert redis_pids(srv) == []
    assert "private redis-server" not in srv.log()

    async def two_nodes() -> bool:
        return sorted(await clients_by_node(srv)) == ["tw-w1", "tw-w2"]

    await wait_for(two_nodes, "info to list both workers", TIMEOUT)
    published = await api_call(srv, "publish", {"channel": "d:x", "data": {"n": 1}})
    assert published["offset"] == 1
    # The durable stream is in the configured Redis (no SQLite file, no private server).
    assert any(b"d:x" in key for key in _keys(external))
    assert not (srv.log_path.parent / "data" / "streams.sqlite3").exists()


def _keys(server: RedisServer) -> list[bytes]:
    client = redis.Redis.from_url(server.url)
    try:
        return list(client.keys("*"))
    finally:
        client.close()
