"""The TCP listener (nsqd's port 4150): one `Consumer` protocol per connection."""

from __future__ import annotations

import asyncio
import time

from tidings.protocol.nsq import IdentifyLimits
from tidings.queue.budget import ReadBudget
from tidings.queue.consumer import Consumer
from tidings.queue.node import QueueNode
from tidings.queue.settings import VERSION


def split_address(address: str, default_port: int) -> tuple[str, int]:
    """`host:port` (or `:port`, `[v6]:port`) -> (host, port)."""
    host, _, port = address.rpartition(":")
    if not _:
        return address or "127.0.0.1", default_port
    return host.strip("[]") or "0.0.0.0", int(port)


class TcpListener:
    """Accepts V2 connections and sends their heartbeats."""

    def __init__(self, node: QueueNode) -> None:
        settings = node.settings
        self.node = node
        self.limits = IdentifyLimits(
            max_rdy_count=settings.max_rdy_count,
            version=VERSION,
            msg_timeout_ms=int(settings.msg_timeout * 1000),
            max_msg_timeout_ms=int(settings.max_msg_timeout * 1000),
            heartbeat_interval_ms=int(settings.heartbeat_interval * 1000),
            max_heartbeat_interval_ms=int(settings.max_heartbeat_interval * 1000),
        )
        self.connections: set[Consumer] = set()
        self.budget = ReadBudget(settings.max_buffered_bytes)
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        host, port = split_address(self.node.settings.tcp_address, 4150)
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: Consumer(self.node, self.limits, self.connections, self.budget),
            host,
            port,
            backlog=1024,
        )
        self.port = int(self.server.sockets[0].getsockname()[1])

    def heartbeat(self) -> None:
        now = time.monotonic()
        for connection in list(self.connections):
            connection.heartbeat(now)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for connection in list(self.connections):
            connection.close()
        if self.server is not None:
            await self.server.wait_closed()
