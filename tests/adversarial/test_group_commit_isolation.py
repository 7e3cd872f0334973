"""One client's hostile write must never fail other users' durable publishes.

Ordinary clients send RPC `ack` to their own inbox with offsets no store can
hold (-2^64, 2^64, ...) while the API publishes durably to other users'
inboxes. The acks are refused with 107 before the store is touched; and even
a write that does reach SQLite and fails there is rolled back alone (a
savepoint per write in the shared group-commit transaction).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from msgspec import Raw

from tests.adversarial.canary import CHANNEL, Canary
from tests.conftest import ServerProcess
from tests.integration.support.ws import STEP, connected_ws, parse_frame
from tidings.protocol.centrifuge.messages import Publication
from tidings.store.base import Position, StoreWriteError
from tidings.store.sqlite import SqliteHistoryStore

HOSTILE_OFFSETS = (-(2**64), 2**64, 2**63, -(2**63) - 1, -1, 10**30)


def pub(n: int) -> Publication:
    return Publication(data=Raw(f'{{"n":{n}}}'.encode()))


# --- the store alone: a write that fails inside SQLite -----------------------------


async def test_a_write_failing_inside_sqlite_fails_alone(tmp_path: Path) -> None:
    """An ack that bypasses validation and overflows in SQLite rolls back only itself."""
    store = SqliteHistoryStore(tmp_path / "s.sqlite3", default_policy="batch")
    try:
        epoch = (await store.append("c", pub(0), 1000, 3600)).epoch
        calls: list[Any] = []
        for n in range(60):
            calls.append(store.append("c", pub(n + 1), 1000, 3600))
            if n % 10 == 0:
                # Straight to the writer thread, as a caller without validation would.
                bad = Position(-(2**64), epoch)
                calls.append(store._call("ack", "u1", "c", bad, "x", writes=True, policy="batch"))
        results = await asyncio.gather(*calls, return_exceptions=True)
        appended = [r for r in results if isinstance(r, Position)]
        refused = [r for r in results if isinstance(r, BaseException)]
        assert len(appended) == 60, f"{60 - len(appended)} appends failed: {refused[:1]}"
        assert sorted(p.offset for p in appended) == list(range(2, 62))
        assert len(refused) == 6 and all(isinstance(e, StoreWriteError) for e in refused)
        assert store.commits < 60, "the hostile writes did share transactions with the appends"
        pubs, top = await store.read("c")
        assert [p.offset for p in pubs] == list(range(1, 62)) and top.offset == 61
        assert await store.acked("u1", "c") is None
    finally:
        await store.close()


# --- through a real server ----------------------------------------------------------


def _settings() -> dict[str, Any]:
    return {
        "client_ping_interval": 25,
        "client_command_rate": 10_000,
        "client_command_burst": 10_000,
        "personal_channel_fsync": "batch",
        "channel": {"allow_subscribe_for_client": True},
    }


async def _hostile(server: ServerProcess, user: str, rounds: int) -> list[dict[str, Any]]:
    """Send `rounds` frames of hostile acks to the user's own inbox; every error reply."""
    ws, _ = await connected_ws(server.ws_url, server.token(user))
    errors: list[dict[str, Any]] = []
    next_id = 10
    try:
        for _ in range(rounds):
            ids = []
            lines = []
            for offset in HOSTILE_OFFSETS * 4:
                data = {"channel": f"#{user}", "offset": offset}
                lines.append(json.dumps({"id": next_id, "rpc": {"method": "ack", "data": data}}))
                ids.append(next_id)
                next_id += 1
            await ws.send("\n".join(lines))
            waiting = set(ids)
            async with asyncio.timeout(STEP):
                while waiting:
                    for message in parse_frame(await ws.recv()):
                        if message == {}:
                            await ws.send("{}")
                        elif message.get("id") in waiting:
                            waiting.discard(message["id"])
                            errors.append(message.get("error", {"code": "no error"}))
    finally:
        await ws.close()
    return errors


async def _publish_durably(server: ServerProcess, count: int) -> list[dict[str, Any]]:
    """Publish `count` times to other users' (durable) inboxes; the failed answers."""
    failed: list[dict[str, Any]] = []
    semaphore = asyncio.Semaphore(16)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:

        async def one(n: int) -> None:
            async with semaphore:
                payload = {"channel": f"#v{n % 50}", "data": {"n": n}}
                async with http.post(
                    f"{server.api_url}/publish",
                    data=json.dumps(payload),
                    headers={"X-API-Key": server.api_key},
                ) as resp:
                    body = await resp.json()
                if "error" in body or resp.status != 200:
                    failed.append(body)

        await asyncio.gather(*(one(n) for n in range(count)))
    return failed


async def test_hostile_acks_fail_no_durable_publish_of_others(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(_settings())
    async with Canary(server) as canary:
        hostile = [asyncio.create_task(_hostile(server, f"h{n}", rounds=15)) for n in range(4)]
        failed = await _publish_durably(server, 600)
        replies = [reply for task in hostile for reply in await task]
        await asyncio.sleep(0.5)
        await canary.check(min_rounds=2)
    assert not failed, f"{len(failed)} of 600 durable publishes failed: {failed[:2]}"
    codes = {reply.get("code") for reply in replies}
    assert codes == {107}, f"hostile acks were answered with {codes}, not only 107"
    assert len(replies) == 4 * 15 * 4 * len(HOSTILE_OFFSETS)
    assert "Traceback" not in server.log()
    assert CHANNEL  # the canary's channel is open to clients in _settings()
