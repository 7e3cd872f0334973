"""Raw clients for hostile tests: SSE and uni_websocket lines as sent, API bodies as bytes.

These read the wire the way a strict, line-based client does, without the
leniency of the SDKs, so that a forged or broken line is seen as one.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp

from tests.conftest import ServerProcess

STEP = 10.0


@dataclass
class SseLines:
    """An SSE stream on a raw socket: each event's `data:` lines, as the spec joins them."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    status: int = 0
    events: list[str] = field(default_factory=list)

    async def next_event(self, within: float = STEP) -> str:
        """The data of the next event that is not a `{}` ping."""
        while True:
            data = await asyncio.wait_for(self._read_event(), within)
            self.events.append(data)
            if data != "{}":
                return data

    async def _read_event(self) -> str:
        lines: list[str] = []
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("stream closed")
            text = line.decode().rstrip("\n")
            if not text:
                if lines:
                    return "\n".join(lines)
                continue
            name, _, value = text.partition(":")
            if name == "data":
                lines.append(value.removeprefix(" "))

    def close(self) -> None:
        self.writer.close()


async def open_sse(server: ServerProcess, query: dict[str, str]) -> SseLines:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    target = "/connection/uni_sse?" + urlencode(query)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    stream = SseLines(reader, writer)
    status = await asyncio.wait_for(reader.readline(), STEP)
    stream.status = int(status.split()[1])
    while (await asyncio.wait_for(reader.readline(), STEP)).strip():
        pass
    return stream


def connect_query(token: str, track: str = "") -> dict[str, str]:
    query = {"cf_connect": json.dumps({"token": token})}
    if track:
        query["cf_channel"] = track
    return query


def uni_ws_url(server: ServerProcess, query: dict[str, str]) -> str:
    return f"ws://127.0.0.1:{server.port}/connection/uni_websocket?{urlencode(query)}"


async def post_raw(
    server: ServerProcess, path: str, body: bytes, wait: float = STEP
) -> tuple[int, Any]:
    """POST `body` as it is to the API (`path` after /api); the status and decoded answer."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=wait)) as http,
        http.post(
            f"{server.api_url}{path}",
            data=body,
            headers={"X-API-Key": server.api_key, "Content-Type": "application/json"},
        ) as resp,
    ):
        text = await resp.read()
        assert resp.content_type == "application/json", (resp.status, text[:200])
        return resp.status, json.loads(text)


def nested(depth: int) -> bytes:
    """A JSON array nested `depth` deep."""
    return b"[" * depth + b"]" * depth
