"""Fan-out peers for `tidings bench`: one on `websockets` (broadcast()), one on aiohttp.

Usage::

    python pypeers.py {websockets|aiohttp} --port P --api-port A [--max-seconds S]

Both speak the minimal Centrifuge JSON subset described in README.md: connect
and subscribe commands get empty successful replies (tokens are not
verified), and ``POST /api/publish`` / ``/api/batch`` on the API port (aiohttp
in both cases) pushes ``{"push":{"channel":C,"pub":{"data":D}}}`` to the
channel's subscribers, encoded once. Single process, uvloop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop
from aiohttp import WSMsgType, web
from websockets.asyncio.server import ServerConnection, broadcast, serve

Send = Callable[[list[Any], bytes], Awaitable[None]]


class Hub:
    """channel -> subscribers, and the publish API on top."""

    def __init__(self, send_all: Send) -> None:
        self.channels: dict[str, dict[Any, None]] = {}
        self.send_all = send_all

    def commands(self, conn: Any, frame: str) -> list[str]:
        replies = []
        for line in frame.split("\n"):
            if not line.strip():
                continue
            cmd = json.loads(line)
            cid = cmd.get("id", 0)
            if not cid:
                continue
            if "connect" in cmd:
                replies.append(
                    f'{{"id":{cid},"connect":{{"client":"{id(conn)}","version":"peer"}}}}'
                )
            elif "subscribe" in cmd:
                self.channels.setdefault(cmd["subscribe"]["channel"], {})[conn] = None
                replies.append(f'{{"id":{cid},"subscribe":{{}}}}')
            else:
                replies.append(f'{{"id":{cid}}}')
        return replies

    def drop(self, conn: Any) -> None:
        for subs in self.channels.values():
            subs.pop(conn, None)

    async def publish(self, channel: str, data: Any) -> None:
        subs = self.channels.get(channel)
        if subs:
            msg = json.dumps({"push": {"channel": channel, "pub": {"data": data}}}).encode()
            await self.send_all(list(subs), msg)

    async def api(self, request: web.Request) -> web.Response:
        body = await request.json()
        if request.match_info["method"] == "batch":
            for command in body["commands"]:
                await self.publish(command["publish"]["channel"], command["publish"]["data"])
        else:
            await self.publish(body["channel"], body["data"])
        return web.json_response({"result": {}})

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({})


async def serve_api(hub: Hub, port: int) -> web.AppRunner:
    app = web.Application()
    app.router.add_post("/api/{method}", hub.api)
    app.router.add_get("/health", hub.health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def run_websockets(port: int, api_port: int, seconds: float) -> None:
    async def send_all(conns: list[Any], msg: bytes) -> None:
        broadcast(conns, msg.decode())

    hub = Hub(send_all)

    async def handler(ws: ServerConnection) -> None:
        try:
            async for frame in ws:
                for reply in hub.commands(ws, str(frame)):
                    await ws.send(reply)
        finally:
            hub.drop(ws)

    runner = await serve_api(hub, api_port)
    async with serve(handler, "127.0.0.1", port, compression=None, ping_interval=None):
        await asyncio.sleep(seconds)
    await runner.cleanup()


async def run_aiohttp(port: int, api_port: int, seconds: float) -> None:
    async def send_all(conns: list[Any], msg: bytes) -> None:
        for ws in conns:  # the public API: one awaited send per connection
            if not ws.closed:
                await ws.send_frame(msg, WSMsgType.TEXT)

    hub = Hub(send_all)

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, autoping=True)
        await ws.prepare(request)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    for reply in hub.commands(ws, msg.data):
                        await ws.send_str(reply)
        finally:
            hub.drop(ws)
        return ws

    app = web.Application()
    app.router.add_get("/connection/websocket", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    api_runner = await serve_api(hub, api_port)
    await asyncio.sleep(seconds)
    await api_runner.cleanup()
    await runner.cleanup()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("lib", choices=["websockets", "aiohttp"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--api-port", type=int, required=True)
    p.add_argument("--max-seconds", type=float, default=600.0)
    args = p.parse_args()
    run = run_websockets if args.lib == "websockets" else run_aiohttp
    uvloop.run(run(args.port, args.api_port, args.max_seconds))


if __name__ == "__main__":
    main()
