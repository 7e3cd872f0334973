"""An in-process `tidings lookup` on free loopback ports, with a clock the test moves."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tidings.lookup.server import LookupOptions, LookupServer
from tidings.protocol.nsq.lookup import (
    MAGIC_V1,
    LookupResponseReader,
    PeerInfo,
    encode_identify,
)
from tidings.testing.clock import FakeClock


@dataclass
class RunningLookup:
    server: LookupServer
    clock: FakeClock
    http: aiohttp.ClientSession

    async def get(self, path: str, method: str = "GET", **kwargs: Any) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.server.ports.http}{path}"
        async with self.http.request(method, url, **kwargs) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except ValueError:
                return response.status, text

    async def settle(self) -> None:
        """Let the server's tasks run (real time: a closed socket is noticed by the loop)."""
        await asyncio.sleep(0.01)

    async def post(self, path: str) -> tuple[int, Any]:
        return await self.get(path, method="POST")

    async def node(self, **peer: Any) -> Registrant:
        registrant = await Registrant.connect(self.server.ports.tcp)
        info = {"broadcast_address": "127.0.0.1", "tcp_port": 4150, "http_port": 4151}
        answer = await registrant.call(
            encode_identify(PeerInfo(**{**info, "version": "1.3.0", **peer}))
        )
        assert json.loads(answer)["tcp_port"] == self.server.ports.tcp
        return registrant


class Registrant:
    """A raw registration connection: send bytes, read lookupd's answer frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.frames = LookupResponseReader()
        self.ready: list[bytes] = []

    @classmethod
    async def connect(cls, port: int, magic: bytes = MAGIC_V1) -> Registrant:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(magic)
        return cls(reader, writer)

    async def call(self, data: bytes) -> bytes:
        self.writer.write(data)
        return await self.answer()

    async def answer(self) -> bytes:
        while not self.ready:
            data = await asyncio.wait_for(self.reader.read(65536), 5)
            if not data:
                raise EOFError("closed")
            self.ready += self.frames.receive_data(data)
        return self.ready.pop(0)

    async def closed(self) -> bool:
        """True when the server closed the connection (after any pending frames)."""
        data = await asyncio.wait_for(self.reader.read(65536), 5)
        return data == b""

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


@pytest.fixture
async def lookup() -> AsyncIterator[RunningLookup]:
    clock = FakeClock()
    options = LookupOptions(
        tcp_address="127.0.0.1",
        tcp_port=0,
        http_address="127.0.0.1",
        http_port=0,
        broadcast_address="127.0.0.1",
    )
    server = LookupServer(options, clock=clock)
    await server.start()
    async with aiohttp.ClientSession() as http:
        yield RunningLookup(server, clock, http)
    await server.stop()
