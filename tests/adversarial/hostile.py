"""Tools of the hostile client: raw WebSocket frames, raw HTTP heads, server measurements.

`RawWebSocket` writes frames byte by byte (any opcode, reserved bits,
fragments, pings) over a plain socket, which no WebSocket library lets a
test do. `Canary` is the well-behaved client that must not notice.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.conftest import ServerProcess
from tests.integration.support.api import api_call
from tests.integration.support.ws import STEP, connected_ws, recv_messages, subscribe

TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA
_MASK = b"\x11\x22\x33\x44"


def frame_bytes(
    opcode: int, payload: bytes = b"", *, fin: bool = True, rsv1: bool = False
) -> bytes:
    """One masked client frame."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    masked = bytes(b ^ _MASK[i % 4] for i, b in enumerate(payload))
    return head + _MASK + masked


def upgrade_request(
    host: str, port: int, path: str = "/connection/websocket", version: str = "13"
) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: {version}\r\n\r\n"
    ).encode()


class RawWebSocket:
    """A WebSocket client that sends whatever frames it is told to."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.status = 0
        self.head = ""

    @classmethod
    async def open(
        cls,
        server: ServerProcess,
        *,
        version: str = "13",
        rcvbuf: int = 0,
        local_ip: str = "127.0.0.1",
        path: str = "/connection/websocket",
    ) -> RawWebSocket:
        """Upgrade a new socket (with a tiny receive buffer if `rcvbuf`); check the status."""
        reader, writer = await open_socket(server, rcvbuf=rcvbuf, local_ip=local_ip)
        ws = cls(reader, writer)
        writer.write(upgrade_request("127.0.0.1", server.port, path, version))
        async with asyncio.timeout(STEP):
            head = await reader.readuntil(b"\r\n\r\n")
        ws.status = int(head.split(b" ", 2)[1])
        ws.head = head.decode("latin-1")
        return ws

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send_frame(self, opcode: int, payload: bytes = b"", **flags: bool) -> None:
        await self.send(frame_bytes(opcode, payload, **flags))

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.send_frame(TEXT, json.dumps(message).encode())

    async def read_frame(self, within: float = STEP) -> tuple[int, bytes]:
        """(opcode, payload) of the next server frame (servers never fragment or mask here)."""
        async with asyncio.timeout(within):
            first, second = await self.reader.readexactly(2)
            n = second & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
            return first & 0x0F, await self.reader.readexactly(n)

    async def connect(self, token: str) -> dict[str, Any]:
        """Send connect; its reply."""
        await self.send_json({"id": 1, "connect": {"token": token}})
        while True:
            opcode, payload = await self.read_frame()
            if opcode == TEXT:
                for line in payload.split(b"\n"):
                    message: dict[str, Any] = json.loads(line)
                    if message.get("id") == 1:
                        return message

    async def close_code(self, within: float = STEP) -> int | None:
        """Read until the server's close frame: its code (None: connection ended without one)."""
        try:
            while True:
                opcode, payload = await self.read_frame(within)
                if opcode == CLOSE:
                    return int(struct.unpack("!H", payload[:2])[0]) if payload else 0
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    def abort(self) -> None:
        self.writer.transport.abort()


async def open_socket(
    server: ServerProcess, *, rcvbuf: int = 0, local_ip: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to the client port from `local_ip` (any 127.x.y.z works on Linux)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind((local_ip, 0))
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    return await asyncio.open_connection(sock=sock, limit=1 << 20)


async def http_exchange(server: ServerProcess, request: bytes, within: float = STEP) -> bytes:
    """Send raw bytes to the client port; everything the server answers before closing."""
    reader, writer = await open_socket(server)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(within):
            return await reader.read(1 << 20)
    finally:
        writer.close()


async def open_sse(
    server: ServerProcess, token: str, *, rcvbuf: int = 0, local_ip: str = "127.0.0.1"
) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter]:
    """A `GET /connection/uni_sse` stream: its status, and the socket (head read)."""
    reader, writer = await open_socket(server, rcvbuf=rcvbuf, local_ip=local_ip)
    connect = quote(json.dumps({"token": token}))
    writer.write(
        f"GET /connection/uni_sse?cf_connect={connect} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    async with asyncio.timeout(STEP):
        head = await reader.readuntil(b"\r\n\r\n")
    return status_of(head), reader, writer


def status_of(response: bytes) -> int:
    """The status code of a raw HTTP response (0: none)."""
    parts = response.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[0].startswith(b"HTTP/") else 0


def rss_kib(server: ServerProcess) -> int:
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def open_fds(server: ServerProcess) -> int:
    return len(os.listdir(f"/proc/{server.proc.pid}/fd"))


async def health(server: ServerProcess) -> int:
    """Status of `GET /health` on the API port."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.api_port)
    try:
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        async with asyncio.timeout(STEP):
            return status_of(await reader.read(4096))
    finally:
        writer.close()


def assert_no_traceback(server: ServerProcess) -> None:
    log = server.log()
    assert "Traceback" not in log and "Fatal error" not in log, log[-3000:]


class Canary:
    """A well-behaved subscriber (from its own IP) that must keep receiving and connecting."""

    CHANNEL = "canary"

    def __init__(self, server: ServerProcess, *, connect_each_round: bool = True) -> None:
        self.server = server
        self.connect_each_round = connect_each_round
        self.ws: Any = None
        self.rounds = 0

    async def start(self) -> None:
        self.ws, _ = await connected_ws(self.server.ws_url, self.server.token("canary"))
        await subscribe(self.ws, self.CHANNEL)

    async def check(self) -> None:
        """A publication reaches the subscriber, and a new client connects."""
        self.rounds += 1
        label = f"round-{self.rounds}"
        await api_call(self.server, "publish", {"channel": self.CHANNEL, "data": {"l": label}})
        async with asyncio.timeout(STEP):
            while True:
                pubs = [m["push"]["pub"] for m in await recv_messages(self.ws) if "push" in m]
                if any(p["data"] == {"l": label} for p in pubs if "data" in p):
                    break
        if not self.connect_each_round:
            return
        fresh, _ = await connected_ws(self.server.ws_url, self.server.token(f"c{self.rounds}"))
        await fresh.close()

    async def stop(self) -> None:
        if self.ws is not None:
            await self.ws.close()


@asynccontextmanager
async def canary_watching(
    server: ServerProcess, every: float = 0.3, *, connect_each_round: bool = True
) -> AsyncIterator[Canary]:
    """A canary checked before, repeatedly during, and after the block; the server survives."""
    canary = Canary(server, connect_each_round=connect_each_round)
    await canary.start()
    await canary.check()
    stop = asyncio.Event()

    async def watch() -> None:
        while not stop.is_set():
            await canary.check()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every):
                    await stop.wait()

    watcher = asyncio.create_task(watch())
    try:
        yield canary
    finally:
        stop.set()
    await watcher  # raises if the canary missed a publication or could not connect
    await canary.check()
    await canary.stop()
    assert server.proc.poll() is None, server.log()[-3000:]
