"""A lookup service on its two ports: registration (TCP, 4160) and discovery (HTTP, 4161)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from tidings.lookup.http import Liveness, LookupHTTP
from tidings.lookup.registry import RegistrationTable
from tidings.lookup.tcp import LookupIdentity, RegistrationListener, default_hostname

#: The nsqlookupd release whose API this implements; reported by `/info` and IDENTIFY so
#: that NSQ tools which gate features on the version treat tidings like that release.
NSQ_API_VERSION = "1.3.0"


@dataclass(frozen=True, slots=True)
class LookupOptions:
    tcp_address: str = "0.0.0.0"
    tcp_port: int = 4160
    http_address: str = "0.0.0.0"
    http_port: int = 4161
    broadcast_address: str = field(default_factory=default_hostname)
    liveness: Liveness = field(default_factory=Liveness)


@dataclass(frozen=True, slots=True)
class LookupPorts:
    tcp: int
    http: int


class LookupServer:
    """`start()` binds both ports (0 picks free ones); `stop()` closes them and all peers."""

    def __init__(self, options: LookupOptions, clock: Callable[[], float] = time.monotonic) -> None:
        self.options = options
        self.table = RegistrationTable(clock)
        self.ports = LookupPorts(0, 0)
        self._hostname = default_hostname()
        self._listener = RegistrationListener(
            self.table, self._identity, clock, options.liveness.inactive_producer_timeout
        )
        self._http = LookupHTTP(self.table, options.liveness, NSQ_API_VERSION, clock)
        self._tcp_server: asyncio.Server | None = None
        self._runner: web.AppRunner | None = None

    def _identity(self) -> LookupIdentity:
        return LookupIdentity(
            broadcast_address=self.options.broadcast_address,
            hostname=self._hostname,
            http_port=self.ports.http,
            tcp_port=self.ports.tcp,
            version=NSQ_API_VERSION,
        )

    async def start(self) -> LookupPorts:
        self._tcp_server = await asyncio.start_server(
            self._listener.handle, self.options.tcp_address, self.options.tcp_port
        )
        self._runner = web.AppRunner(self._http.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.options.http_address, self.options.http_port)
        await site.start()
        tcp_port = self._tcp_server.sockets[0].getsockname()[1]
        self.ports = LookupPorts(tcp_port, self._runner.addresses[0][1])
        return self.ports

    async def stop(self) -> None:
        if self._tcp_server is not None:
            self._tcp_server.close()
            self._listener.close_all()
            await self._tcp_server.wait_closed()
        if self._runner is not None:
            await self._runner.cleanup()
