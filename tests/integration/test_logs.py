"""Structured logs of a real `tidings serve`: JSON lines, request ids, connection lifecycle."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from tests.conftest import API_KEY, OPEN_CHANNEL, ServerProcess
from tests.integration.support.ws import connected_ws


def json_lines(server: ServerProcess) -> list[dict[str, Any]]:
    """Every log record; lines that are not records (the start banner) are skipped."""
    records = []
    for line in server.log().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))  # every record line must parse
    return records


async def test_json_logs_with_request_ids_and_connection_events(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory({"channel": OPEN_CHANNEL, "log_format": "json", "log_level": "debug"})
    async with aiohttp.ClientSession() as http:
        headers = {"X-API-Key": API_KEY, "X-Request-Id": "deploy-42.a"}
        async with http.post(f"{server.api_url}/info", json={}, headers=headers) as r:
            assert r.headers["X-Request-Id"] == "deploy-42.a"
        async with http.post(
            f"{server.api_url}/info", json={}, headers={"X-API-Key": API_KEY}
        ) as r:
            generated = r.headers["X-Request-Id"]
            assert len(generated) == 32 and int(generated, 16) >= 0
        bad = {"X-API-Key": API_KEY, "X-Request-Id": "evil\tid {}"}
        async with http.post(f"{server.api_url}/info", json={}, headers=bad) as r:
            assert r.headers["X-Request-Id"] != "evil\tid {}"
        async with http.post(f"{server.api_url}/nope", json={}, headers=headers) as r:
            assert r.status == 404
            assert r.headers["X-Request-Id"] == "deploy-42.a"
    ws, result = await connected_ws(server.ws_url, server.token("ann"))
    await ws.close()

    deadline = time.monotonic() + 10
    while True:
        records = json_lines(server)
        messages = [r["message"] for r in records]
        client = result["client"]
        lifecycle = [m for m in messages if m.startswith(f"client {client} ")]
        if len(lifecycle) >= 3 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert records, server.log()
    assert {"time", "level", "logger", "message"} <= set(records[0])
    access = [r for r in records if r["logger"] == "tidings.api.access"]
    tagged = [r for r in access if r.get("request_id") == "deploy-42.a"]
    assert len(tagged) == 2
    assert "/api/info -> 200" in tagged[0]["message"]
    assert any(r.get("request_id") == generated for r in access)
    assert [m.split(" ", 2)[2].split(":")[0].split(" ")[0] for m in lifecycle] == [
        "accepted",
        "connected",
        "went",
    ], lifecycle
    assert all(r["level"] == "debug" for r in records if r["message"] in lifecycle)


async def test_info_level_keeps_connection_events_out(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory({"channel": OPEN_CHANNEL, "log_format": "json"})
    ws, result = await connected_ws(server.ws_url, server.token("ann"))
    await ws.close()
    await asyncio.sleep(0.5)
    assert not [r for r in json_lines(server) if result["client"] in r["message"]]
