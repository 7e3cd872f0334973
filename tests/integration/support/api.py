"""The server API over plain aiohttp (for the methods `cent` does not know)."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.conftest import ServerProcess
from tests.integration.support.ws import STEP


async def api_raw(
    server: ServerProcess,
    method: str,
    payload: dict[str, Any],
    http: aiohttp.ClientSession | None = None,
    statuses: tuple[int, ...] = (200,),
) -> dict[str, Any]:
    """POST one API call (on `http`, else a session of its own); the whole JSON answer.

    The answer must have one of `statuses` (HTTP 200 by default); it holds
    `result` or `error`.
    """
    if http is None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=STEP)) as own:
            return await api_raw(server, method, payload, own, statuses)
    async with http.post(
        f"{server.api_url}/{method}", json=payload, headers={"X-API-Key": server.api_key}
    ) as resp:
        assert resp.status in statuses, await resp.text()
        body: dict[str, Any] = await resp.json()
    return body


async def api_body(
    server: ServerProcess,
    method: str,
    payload: dict[str, Any],
    http: aiohttp.ClientSession | None = None,
) -> dict[str, Any]:
    """The whole JSON answer of a successful API call (no `error`)."""
    body = await api_raw(server, method, payload, http)
    assert "error" not in body, body
    return body


async def api_call(
    server: ServerProcess,
    method: str,
    payload: dict[str, Any],
    http: aiohttp.ClientSession | None = None,
) -> dict[str, Any]:
    """The `result` of a successful API call."""
    body = await api_body(server, method, payload, http)
    result: dict[str, Any] = body.get("result", {})
    return result


async def refusal_counters(server: ServerProcess) -> dict[str, float]:
    """The `refused.*` metric items of the `info` API method."""
    info = await api_call(server, "info", {})
    items = info["nodes"][0]["metrics"]["items"]
    return {k: v for k, v in items.items() if k.startswith("refused.")}
