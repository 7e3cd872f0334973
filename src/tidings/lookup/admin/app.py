"""The admin web app: the page, `/api/overview` and `/api/{topic,channel}/{action}`.

Actions are POSTs that must carry the header `X-Queue-Admin: 1`: a page from
another origin cannot add it without a CORS preflight this app never grants, so a
link or a form elsewhere cannot pause or delete anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from tidings.lookup.admin.cluster import AdminRequestError, QueueCluster

STATIC = Path(__file__).resolve().parent / "static"
ACTION_HEADER = "X-Queue-Admin"


class AdminApp:
    """The aiohttp application of the admin UI over one `QueueCluster`."""

    def __init__(self, cluster: QueueCluster) -> None:
        self.cluster = cluster
        self.app = web.Application(client_max_size=64 * 1024)
        self.app.router.add_get("/", self._index)
        self.app.router.add_static("/static/", STATIC)
        self.app.router.add_get("/api/overview", self._overview)
        self.app.router.add_post("/api/{kind}/{action}", self._action)
        self.app.on_startup.append(self._start)
        self.app.on_cleanup.append(self._stop)

    async def _start(self, app: web.Application) -> None:
        await self.cluster.start()

    async def _stop(self, app: web.Application) -> None:
        await self.cluster.stop()

    async def _index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def _overview(self, request: web.Request) -> web.Response:
        overview = await self.cluster.overview()
        overview["sources"] = {
            "lookupd": self.cluster.lookupd_http,
            "nsqd": self.cluster.nsqd_http,
        }
        return web.json_response(overview)

    async def _action(self, request: web.Request) -> web.Response:
        if request.headers.get(ACTION_HEADER) != "1":
            return web.json_response({"message": f"{ACTION_HEADER} header required"}, status=403)
        try:
            body: Any = await request.json()
            topic, channel = str(body["topic"]), body.get("channel")
            results = await self.cluster.act(
                request.match_info["kind"],
                request.match_info["action"],
                topic,
                None if channel is None else str(channel),
            )
        except (ValueError, KeyError, TypeError, AdminRequestError) as exc:
            return web.json_response({"message": str(exc) or "bad request"}, status=400)
        failed = [r for r in results if not 200 <= r["status"] < 300 and r["status"] != 404]
        return web.json_response({"results": results, "ok": not failed})
