"""Abuse of the API port: callers without the key, slow bodies, oversized bodies.

The key is checked from the headers before the body is read, so a caller
without it holds nothing; a caller with it must send its body in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.adversarial.hostile import canary_watching, health, rss_kib, status_of
from tests.conftest import OPEN_CHANNEL, ServerProcess
from tests.integration.support.ws import STEP


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory(
        {"channel": OPEN_CHANNEL, "api_body_timeout": 1.0, "api_max_body_size": 1_048_576}
    )


async def api_socket(server: ServerProcess) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.api_port)


def post_head(length: int, key: str | None, method: str = "publish") -> bytes:
    lines = [f"POST /api/{method} HTTP/1.1", "Host: x", f"Content-Length: {length}"]
    if key is not None:
        lines.append(f"X-API-Key: {key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def response(reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of one response."""
    async with asyncio.timeout(STEP):
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
        body = await reader.readexactly(length)
    return status_of(head), json.loads(body)


@pytest.mark.parametrize("key", [None, "wrong-key"])
@pytest.mark.parametrize("method", ["publish", ""])
async def test_caller_without_the_key_is_refused_before_the_body(
    server: ServerProcess, key: str | None, method: str
) -> None:
    reader, writer = await api_socket(server)
    head = post_head(900_000, key, method).replace(b"/api/ ", b"/api ")
    writer.write(head + b"{" + b" " * 1000)  # the body never comes
    status, body = await response(reader)
    writer.close()
    assert status == 401
    assert body["error"]["code"] == 101


async def test_slow_body_times_out_with_408(server: ServerProcess) -> None:
    reader, writer = await api_socket(server)
    writer.write(post_head(1000, server.api_key) + b'{"channel":')
    status, body = await response(reader)
    assert status == 408
    assert "in time" in body["error"]["message"]
    async with asyncio.timeout(STEP):
        assert await reader.read() == b""  # and the connection is closed
    writer.close()


async def test_body_above_the_limit_is_413(server: ServerProcess) -> None:
    reader, writer = await api_socket(server)
    data = json.dumps({"channel": "news", "data": {"pad": "x" * 1_100_000}}).encode()
    writer.write(post_head(len(data), server.api_key) + data)
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    status, body = await response(reader)
    writer.close()
    assert status == 413
    assert body["error"]["code"] == 107


async def test_keyed_call_still_works(server: ServerProcess) -> None:
    reader, writer = await api_socket(server)
    data = json.dumps({"channel": "news", "data": {"ok": True}}).encode()
    writer.write(post_head(len(data), server.api_key) + data)
    status, body = await response(reader)
    writer.close()
    assert status == 200 and "result" in body, body


async def test_keyless_slow_uploads_hold_little_memory(
    server_factory: Callable[..., ServerProcess],
) -> None:
    """40 keyless uploads of 3 MiB each (10 MiB announced): the server holds none of it."""
    server = server_factory({"channel": OPEN_CHANNEL})
    before = rss_kib(server)
    chunk = b"x" * 65536

    async def upload() -> None:
        _, writer = await api_socket(server)
        writer.write(post_head(10 * 1024 * 1024 - 1, None))
        with contextlib.suppress(ConnectionError):
            for _ in range(48):  # 3 MiB, in steps
                writer.write(chunk)
                await writer.drain()
                await asyncio.sleep(0.01)
        writer.transport.abort()

    async with canary_watching(server):
        uploads = [asyncio.create_task(upload()) for _ in range(40)]
        await asyncio.gather(*uploads)
        growth_mib = (rss_kib(server) - before) / 1024
        assert await health(server) == 200
    assert growth_mib < 40, f"server grew {growth_mib:.1f} MiB for keyless uploads"
