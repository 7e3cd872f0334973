"""Runs a node with its listeners: the client port and the API port."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

from aiohttp import web

from tidings import demo
from tidings.api import request_ids
from tidings.api.admin import AdminUi
from tidings.api.debug import NodeDebugger
from tidings.api.metrics import Metrics
from tidings.api.server import ApiServer
from tidings.config import Settings
from tidings.core.node import Node
from tidings.demo import routes as demo_routes
from tidings.transport.sse import SSE_PATH, sse_handler
from tidings.transport.websocket import ClientPortRouter, serve_client_port

log = logging.getLogger(__name__)

#: Seconds the API port reads and drops what is left of a body it refused.
API_LINGER = 1.0


@dataclass
class Ports:
    client: int
    api: int


class Server:
    """A node plus its sockets. `start()` binds; `stop()` shuts down gracefully."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        demo.configure(settings)
        self.node = Node(settings)
        self.router = ClientPortRouter(self.node)
        self.router.add_http(SSE_PATH, sse_handler(self.node))
        if settings.demo:
            demo_routes.install(self.router, settings)
        self.api = ApiServer(self.node, settings.api_key, settings.api_insecure)
        NodeDebugger().install(self.api.api)
        self.metrics = Metrics(self.node)
        self.metrics.install(self.api.app, self.api.api.method_names)
        if AdminUi.enabled(settings):
            AdminUi(self.node, self.api.api, settings).install(self.api.app)
        request_ids.install(self.api.app)
        self._client_server: asyncio.Server | None = None
        self._api_runner: web.AppRunner | None = None
        self.ports = Ports(0, 0)

    async def start(self) -> Ports:
        await self.node.start()
        self._client_server = await serve_client_port(self.node, self.router)
        self._api_runner = web.AppRunner(
            self.api.app,
            access_log=None,
            shutdown_timeout=self.settings.shutdown_timeout,
            # The unread rest of a refused body (401, 408) is discarded for this long at most.
            lingering_time=API_LINGER,
        )
        await self._api_runner.setup()
        site = web.TCPSite(self._api_runner, self.settings.api_address, self.settings.api_port)
        await site.start()
        client_port = self._client_server.sockets[0].getsockname()[1]
        api_port = self._api_runner.addresses[0][1]
        self.ports = Ports(client_port, api_port)
        return self.ports

    async def stop(self) -> None:
        """Stop accepting, let in-flight API calls finish, then disconnect clients with 3001.

        The API drains first: its calls still need the node's stores, which `node.stop()` closes.
        """
        if self._client_server is not None:
            self._client_server.close()
        if self._api_runner is not None:
            await self._api_runner.cleanup()
        await self.node.stop()
        # Give the close frames a moment to leave the sockets.
        await asyncio.sleep(0.05)


async def run(server: Server, banner: bool = True) -> None:
    """Serve until SIGTERM or SIGINT."""
    ports = await server.start()
    if banner:
        print_banner(server.settings, ports)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await server.stop()


def print_banner(settings: Settings, ports: Ports) -> None:
    host, api_host = _display_host(settings.address), _display_host(settings.api_address)
    lines = [
        f"tidings ready: client port {ports.client}, API port {ports.api}",
        f"  clients:  ws://{host}:{ports.client}/connection/websocket",
        f"  API:      http://{api_host}:{ports.api}/api/<method>  (header X-API-Key)",
        f"  health:   http://{api_host}:{ports.api}/health",
        f"  metrics:  http://{api_host}:{ports.api}/metrics",
    ]
    if AdminUi.enabled(settings):
        lines.append(f"  admin:    http://{api_host}:{ports.api}/admin")
    if settings.demo:
        lines.append(f"  demo:     http://{host}:{ports.client}/  (chat room)")
    print("\n".join(lines), flush=True)


def _display_host(address: str) -> str:
    return "localhost" if address in ("0.0.0.0", "", "::") else address
