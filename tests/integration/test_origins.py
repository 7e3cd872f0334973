"""Browsers may only connect from the port's own origin or from allowed_origins."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from urllib.parse import quote

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.conftest import OPEN_CHANNEL, ServerProcess


async def _upgrade(server: ServerProcess, origin: str | None) -> int:
    """HTTP status of a WebSocket upgrade with `origin` (101 on success)."""
    headers = {"Origin": origin} if origin else None
    try:
        async with websockets.connect(
            server.ws_url, origin=None, additional_headers=headers, open_timeout=5
        ) as ws:
            await ws.send(json.dumps({"id": 1, "connect": {"token": server.token("42")}}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert "connect" in reply, reply
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


async def _sse_head(server: ServerProcess, origin: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    connect = json.dumps({"token": server.token("42")})
    writer.write(
        f"GET /connection/uni_sse?cf_connect={quote(connect)} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\nOrigin: {origin}\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    return head


@pytest.fixture
def strict(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory({"channel": OPEN_CHANNEL})


async def test_clients_without_origin_connect(strict: ServerProcess) -> None:
    assert await _upgrade(strict, None) == 101


async def test_a_page_of_the_same_origin_connects(strict: ServerProcess) -> None:
    assert await _upgrade(strict, f"http://127.0.0.1:{strict.port}") == 101


async def test_a_foreign_origin_is_refused_before_the_upgrade(strict: ServerProcess) -> None:
    assert await _upgrade(strict, "http://evil.example") == 403
    assert await _upgrade(strict, None) == 101, "others are unaffected"


async def test_allowed_origins_admit_listed_pages(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(
        {"channel": OPEN_CHANNEL}, args=["--allowed-origins", "http://app.example"]
    )
    assert await _upgrade(server, "http://app.example") == 101
    assert await _upgrade(server, "http://other.example") == 403
    head = await _sse_head(server, "http://app.example")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"Access-Control-Allow-Origin: http://app.example" in head
    refused = await _sse_head(server, "http://other.example")
    assert refused.startswith(b"HTTP/1.1 403")
