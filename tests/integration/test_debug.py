"""The debug API methods and `tidings debug` against a busy `tidings serve` process."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import marshal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import API_KEY, OPEN_CHANNEL, ServerProcess
from tests.integration.support.ws import closing, connected_ws, subscribe


async def call(
    server: ServerProcess, method: str, body: dict[str, Any], key: str = API_KEY
) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server.api_url}/{method}", json=body, headers={"X-API-Key": key}) as r,
    ):
        return r.status, await r.json()


@contextlib.asynccontextmanager
async def busy(server: ServerProcess) -> AsyncIterator[None]:
    """Two subscribers and a publisher hammering the node while the block runs."""
    sockets = []
    for user in ("a", "b"):
        ws, _ = await connected_ws(server.ws_url, server.token(user))
        await subscribe(ws, "news")
        sockets.append(ws)

    async def drain(ws: Any) -> None:
        with contextlib.suppress(Exception):
            async for _ in ws:
                pass

    async def publish() -> None:
        n = 0
        while True:
            n += 1
            await call(server, "publish", {"channel": "news", "data": {"n": n}})

    tasks = [asyncio.create_task(drain(ws)) for ws in sockets]
    tasks.append(asyncio.create_task(publish()))
    async with closing(*sockets):
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def test_debug_methods_on_a_busy_node(server: ServerProcess) -> None:
    async with busy(server):
        status, reply = await call(server, "debug_tasks", {})
        assert status == 200
        tasks = reply["result"]["tasks"]
        names = {t["name"] for t in tasks}
        assert {"sweep", "events", "pings"} <= names
        sweep = next(t for t in tasks if t["name"] == "sweep")
        assert sweep["coroutine"] == "Node._sweep"
        assert any("tidings/core/node.py" in frame for frame in sweep["stack"])
        assert sweep["awaiting"][0] == "sleep"

        status, reply = await call(server, "debug_profile", {"seconds": 1, "limit": 200})
        profile = reply["result"]
        assert profile["format"] == "pstats"
        assert "tidings/api/methods.py" in profile["text"]  # the publishes being served
        stats = marshal.loads(base64.b64decode(profile["pstats_b64"]))
        assert any(filename.endswith("tidings/core/node.py") for filename, _, _ in stats)

        status, reply = await call(server, "debug_profile", {"seconds": 1, "format": "svg"})
        flame = reply["result"]
        assert flame["samples"] > 0
        assert flame["svg"].startswith("<svg")
        assert "tidings." in flame["svg"]

        status, reply = await call(server, "debug_memory", {"seconds": 1, "limit": 10})
        memory = reply["result"]
        assert memory["started_tracing"] is True
        assert memory["traced_bytes"] > 0
        assert 0 < len(memory["top"]) <= 10
        assert all(row["size"] > 0 and row["traceback"] for row in memory["top"])


async def test_one_profile_at_a_time(server: ServerProcess) -> None:
    # Two overlapping profiles: whichever arrives second is refused.
    replies = await asyncio.gather(
        call(server, "debug_profile", {"seconds": 2}),
        call(server, "debug_profile", {"seconds": 2}),
    )
    results = [reply["result"] for _, reply in replies if "result" in reply]
    errors = [reply["error"] for _, reply in replies if "error" in reply]
    assert [r["format"] for r in results] == ["pstats"]
    assert [e["code"] for e in errors] == [111]
    assert "already running" in errors[0]["message"]


async def test_debug_methods_need_the_api_key_and_check_bounds(server: ServerProcess) -> None:
    for method in ("debug_tasks", "debug_profile", "debug_memory"):
        status, reply = await call(server, method, {"seconds": 1}, key="wrong")
        assert status == 401
        assert reply["error"]["code"] == 101
    for body in ({"seconds": 61}, {"seconds": 0}, {"seconds": 1, "format": "dot"}, {"nope": 1}):
        _status, reply = await call(server, "debug_profile", body)
        assert reply["error"]["code"] == 107, body
    _status, reply = await call(server, "debug_memory", {"seconds": 120})
    assert reply["error"]["code"] == 107


def test_cli(server: ServerProcess, tmp_path: Path) -> None:
    api = f"http://127.0.0.1:{server.api_port}"

    def debug(*args: str, key: str = API_KEY) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "tidings", "debug", *args, "--api", api]
        return subprocess.run(
            [*command, "--api-key", key], capture_output=True, text=True, timeout=60, check=False
        )

    tasks = debug("tasks")
    assert tasks.returncode == 0, tasks.stderr
    assert "sweep  Node._sweep" in tasks.stdout
    svg = tmp_path / "profile.svg"
    profile = debug("profile", "--seconds", "1", "--format", "svg", "--output", str(svg))
    assert profile.returncode == 0, profile.stderr
    assert svg.read_text().startswith("<svg")
    memory = debug("memory", "--seconds", "0.5", "--limit", "5")
    assert memory.returncode == 0, memory.stderr
    assert "top allocations" in memory.stdout
    refused = debug("tasks", key="wrong")
    assert refused.returncode == 1
    assert "HTTP 401" in refused.stderr


@pytest.fixture
def server(server_factory: Any) -> ServerProcess:
    return server_factory({"channel": OPEN_CHANNEL})
