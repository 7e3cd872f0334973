"""Runs a node with its listeners: the client port and the API port."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from aiohttp import web

from tidings import demo
from tidings.api import request_ids
from tidings.api.admin import AdminUi
from tidings.api.client_port import api_handler, api_paths
from tidings.api.cluster import ClusterMethods
from tidings.api.debug import NodeDebugger
from tidings.api.metrics import ClusterCollector, Metrics
from tidings.api.server import ApiServer
from tidings.banner import Ports, print_banner
from tidings.bridges.node_bridges import NodeBridges
from tidings.cluster.dispatch_route import DISPATCH_PATH, Dispatch
from tidings.cluster.node_gossip import NodeGossip, public_urls
from tidings.core.emulation import EmulationSessions
from tidings.core.emulation_relay import ControlRelay
from tidings.core.node import Node
from tidings.demo import routes as demo_routes
from tidings.settings import Settings
from tidings.transport.emulation import (
    BIDI_SSE_PATH,
    EMULATION_PATH,
    HTTP_STREAM_PATH,
    emulation_handler,
    stream_handler,
)
from tidings.transport.sse import SSE_PATH, sse_handler
from tidings.transport.uni_http_stream import UNI_HTTP_STREAM_PATH, uni_http_stream_handler
from tidings.transport.websocket import ClientPortRouter, serve_client_port

log = logging.getLogger(__name__)

#: Seconds the API port reads and drops what is left of a body it refused.
API_LINGER = 1.0


class Server:
    """A node plus its sockets. `start()` binds; `stop()` shuts down gracefully.

    With `reuse_port` both ports are bound with SO_REUSEPORT, shared with the
    other worker processes of a supervisor (`tidings.workers`).
    """

    def __init__(self, settings: Settings, *, reuse_port: bool = False) -> None:
        self.settings = settings
        self.reuse_port = reuse_port
        demo.configure(settings)
        self.node = Node(settings)
        self.bridges = NodeBridges(self.node)
        self.router = ClientPortRouter(self.node)
        self.router.add_http(SSE_PATH, sse_handler(self.node))
        self.router.add_http(UNI_HTTP_STREAM_PATH, uni_http_stream_handler(self.node))
        #: The dispatcher (GET /dispatch); its `gossip` is set once the ports are bound.
        self.dispatch = Dispatch(self.node.name, (), settings.region)
        self.router.add_http(DISPATCH_PATH, self.dispatch.handler())
        self.gossip: NodeGossip | None = None
        #: Streams of emulated connections (HTTP-stream, SSE) by session id.
        self.emulation = EmulationSessions(self.node.uid)
        # Requests naming another node go there over the control channel.
        self.emulation.relay = self.node.peers.emulation = ControlRelay(
            self.node.peers, self.emulation
        )
        self.router.add_http(HTTP_STREAM_PATH, stream_handler(self.node, self.emulation, False))
        self.router.add_http(BIDI_SSE_PATH, stream_handler(self.node, self.emulation, True))
        self.router.add_http(EMULATION_PATH, emulation_handler(self.node, self.emulation))
        if settings.demo:
            demo_routes.install(self.router, settings)
        self.api = ApiServer(self.node, settings.api_key, settings.api_insecure)
        NodeDebugger().install(self.api.api)
        ClusterMethods(self.api.api, self.dispatch).install()
        self.metrics = Metrics(self.node)
        self.metrics.registry.register(ClusterCollector(self.dispatch))
        self.metrics.install(self.api.app, self.api.api.method_names)
        if AdminUi.enabled(settings):
            AdminUi(self.node, self.api.api, settings).install(self.api.app)
        request_ids.install(self.api.app)
        if settings.api_on_client_port:
            handler = api_handler(self._api_server)
            for path in api_paths(self.api.api.method_names):
                self.router.add_http(path, handler)
        self._client_server: asyncio.Server | None = None
        self._api_runner: web.AppRunner | None = None
        self.ports = Ports(0, 0)

    def _api_server(self) -> web.Server | None:
        """aiohttp's protocol factory of the API, once started (one-port mode)."""
        runner = self._api_runner
        return runner.server if runner is not None else None

    async def start(self) -> Ports:
        await self.node.start()
        self.bridges.start()
        self._client_server = await serve_client_port(
            self.node, self.router, reuse_port=self.reuse_port
        )
        self._api_runner = web.AppRunner(
            self.api.app,
            access_log=None,
            shutdown_timeout=self.settings.shutdown_timeout,
            # The unread rest of a refused body (401, 408) is discarded for this long at most.
            lingering_time=API_LINGER,
        )
        await self._api_runner.setup()
        site = web.TCPSite(
            self._api_runner,
            self.settings.api_address,
            self.settings.api_port,
            reuse_port=self.reuse_port or None,
        )
        await site.start()
        client_port = self._client_server.sockets[0].getsockname()[1]
        api_port = self._api_runner.addresses[0][1]
        self.ports = Ports(client_port, api_port)
        self.node.peers.addresses = [
            f"{self.settings.address}:{client_port}",
            f"{self.settings.api_address}:{api_port}",
        ]
        self.dispatch.client_urls, _ = public_urls(self.settings, client_port, api_port)
        if self.settings.gossip_bind:
            await self._start_gossip()
        return self.ports

    async def _start_gossip(self) -> None:
        gossip = NodeGossip(
            self.settings,
            self.node.name,
            self.node.events,
            lambda: self.node.hub.num_clients,
            client_port=self.ports.client,
            api_port=self.ports.api,
        )
        await gossip.start()  # OSError if the gossip port is taken
        self.gossip = self.dispatch.gossip = gossip

    async def stop(self) -> None:
        """Stop accepting, let in-flight API calls finish, then disconnect clients with 3001.

        The API drains first: its calls still need the node's stores, which `node.stop()` closes.
        With gossip, the node first drains (dispatchers stop offering it) and leaves the cluster.
        """
        self.dispatch.drain()
        if self.gossip is not None:
            await self.gossip.leave()
        if self._client_server is not None:
            self._client_server.close()
        if self._api_runner is not None:
            await self._api_runner.cleanup()
        await self.bridges.stop()
        await self.node.stop()
        # Give the close frames a moment to leave the sockets.
        await asyncio.sleep(0.05)


async def run(
    server: Server,
    banner: bool = True,
    *,
    stop: asyncio.Event | None = None,
    ready: Callable[[Ports], None] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT (or until `stop` is set); `ready` is told the ports."""
    ports = await server.start()
    if banner:
        print_banner(server.settings, ports)
    if ready is not None:
        ready(ports)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await server.stop()
