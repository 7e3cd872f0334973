"""The lifecycle of a `tidings queue` process: open the data, listen, tick, stop."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
import socket
from typing import Any

from aiohttp import web

from tidings.queue.http import HttpApi
from tidings.queue.node import LookupHook, QueueNode
from tidings.queue.replication import ReplicaLink, ReplicationListener
from tidings.queue.settings import VERSION, QueueSettings
from tidings.queue.tcp import TcpListener, split_address

log = logging.getLogger(__name__)

TICK = 0.1


class QueueServer:
    """One queue node with its TCP, HTTP and replication listeners."""

    def __init__(self, settings: QueueSettings) -> None:
        self.settings = settings
        self.node = QueueNode(settings)
        self.tcp = TcpListener(self.node)
        self.http = HttpApi(self.node, connections=self.tcp.connections)
        self.replica: ReplicaLink | None = None
        self.replication: ReplicationListener | None = None
        self.lookup: Any = None
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        settings = self.settings
        self.node.open(loop)
        await self.tcp.start()
        self.http.tcp_port = self.tcp.port
        host, port = split_address(settings.http_address, 4151)
        self._runner = web.AppRunner(self.http.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=1024)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.http.http_port = int(sockets[0].getsockname()[1]) if sockets else port
        if settings.replication_address:
            self.replication = ReplicationListener(self.node, settings.replication_address)
            await self.replication.start()
        if settings.replica:
            self.replica = ReplicaLink(self.node, settings.replica, settings.replica_timeout)
            self.node.replica = self.replica
            await self.replica.start()
        if settings.lookupd_tcp_addresses:
            await self._start_lookup()
        self._ticker = asyncio.create_task(self._tick())

    async def _start_lookup(self) -> None:
        try:
            module = importlib.import_module("tidings.queue.lookup_peer")
        except ImportError:
            log.warning("--lookupd-tcp-address given but lookup registration is not available")
            return
        identity = {
            "broadcast_address": self.settings.broadcast_address or socket.gethostname(),
            "hostname": socket.gethostname(),
            "tcp_port": self.tcp.port,
            "http_port": self.http.http_port,
            "version": VERSION,
        }
        self.lookup = module.LookupPeers(list(self.settings.lookupd_tcp_addresses), identity)
        hook: LookupHook = self.lookup
        self.node.lookup = hook
        for name, topic in self.node.topics.items():
            hook.register(name, None)
            for channel in topic.channels:
                hook.register(name, channel)
        await self.lookup.start()

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        next_checkpoint = loop.time() + self.settings.checkpoint_interval
        while True:
            await asyncio.sleep(TICK)
            try:
                self.node.tick()
                self.tcp.heartbeat()
                if loop.time() >= next_checkpoint:
                    next_checkpoint = loop.time() + self.settings.checkpoint_interval
                    self.node.checkpoint()
            except Exception:  # the timer must survive any one failure
                log.exception("queue timer failed")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self.replica is not None:
            await self.replica.stop()
        if self.replication is not None:
            await self.replication.stop()
        if self.lookup is not None:
            await self.lookup.stop()
        await self.tcp.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        for topic in self.node.topics.values():
            await self.node.committer.sync_now(topic.log)
        self.node.close()


async def run(settings: QueueSettings) -> None:
    """Run until SIGINT/SIGTERM."""
    server = QueueServer(settings)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    print(
        f"tidings queue ready: tcp {settings.tcp_address.rpartition(':')[0]}:{server.tcp.port} "
        f"http {server.http.http_port}"
        + (f" replication {server.replication.port}" if server.replication else ""),
        flush=True,
    )
    await stop.wait()
    await server.stop()
