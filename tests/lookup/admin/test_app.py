"""The admin app's own HTTP surface: the page, its assets, and refused actions."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import free_port
from tidings.lookup.admin.app import AdminApp
from tidings.lookup.admin.cluster import QueueCluster


@pytest.fixture
async def admin() -> AsyncIterator[str]:
    # Sources nobody listens on: the page and refusals must not need them.
    app = AdminApp(QueueCluster([f"127.0.0.1:{free_port()}"], [])).app
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_page_and_assets_are_served(admin: str) -> None:
    async with aiohttp.ClientSession() as http:
        for path, marker in [
            ("/", "tidings queue admin"),
            ("/static/admin.js", "/api/overview"),
            ("/static/admin.css", "dialog"),
        ]:
            async with http.get(admin + path) as response:
                assert response.status == 200
                assert marker in await response.text()


async def test_overview_reports_unreachable_sources(admin: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(admin + "/api/overview") as response:
        overview = await response.json()
    assert overview["nodes"] == [] and overview["topics"] == []
    assert len(overview["errors"]) == 1 and overview["errors"][0].startswith("lookupd ")


@pytest.mark.parametrize(
    ("path", "headers", "body", "status"),
    [
        ("/api/topic/delete", {}, {"topic": "t"}, 403),  # no X-Queue-Admin: not from the page
        ("/api/topic/delete", {"X-Queue-Admin": "1"}, {"topic": "bad/name"}, 400),
        ("/api/topic/explode", {"X-Queue-Admin": "1"}, {"topic": "t"}, 400),
        ("/api/channel/pause", {"X-Queue-Admin": "1"}, {"topic": "t"}, 400),
        ("/api/topic/pause", {"X-Queue-Admin": "1"}, {}, 400),
    ],
)
async def test_refused_actions(
    admin: str, path: str, headers: dict[str, str], body: dict[str, str], status: int
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(admin + path, json=body, headers=headers) as response,
    ):
        assert response.status == status
