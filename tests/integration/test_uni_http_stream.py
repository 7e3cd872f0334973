"""`/connection/uni_http_stream` over the real wire: JSON lines of pushes to a POSTed connect.

The connect push names the session (the API's `session` selects the
stream), publications of the token's channels follow one a line, and a
server-side disconnect ends the stream with a `disconnect` line. A body
that is not a connect request is 400, another method 405.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import ServerProcess
from tests.integration.support.api import api_body as api
from tests.integration.test_sse import NEWS

TIMEOUT = 10.0


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory({"channel": NEWS, "personal_channel": False})


class Stream:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.status = 0
        self.headers: dict[str, str] = {}

    async def line(self) -> dict[str, Any]:
        """The next push that is not a `{}` ping."""
        while True:
            raw = await asyncio.wait_for(self.reader.readline(), TIMEOUT)
            if not raw:
                raise ConnectionError("stream ended")
            value: dict[str, Any] = json.loads(raw)
            if value:
                return value


async def open_stream(server: ServerProcess, body: bytes, method: str = "POST") -> Stream:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = (
        f"{method} /connection/uni_http_stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body)
    stream = Stream(reader, writer)
    stream.status = int((await asyncio.wait_for(reader.readline(), TIMEOUT)).split()[1])
    while (line := (await asyncio.wait_for(reader.readline(), TIMEOUT)).strip()) != b"":
        name, _, value = line.decode().partition(":")
        stream.headers[name.lower()] = value.strip()
    return stream


async def test_stream_of_pushes_then_disconnect_by_session(server: ServerProcess) -> None:
    token = server.token("hana", channels=["news"])
    stream = await open_stream(server, json.dumps({"token": token}).encode())
    try:
        assert stream.status == 200
        assert stream.headers["content-type"] == "application/json"
        connect = (await stream.line())["connect"]
        assert connect["session"] and "news" in connect["subs"]
        for n in range(2):
            await api(server, "publish", {"channel": "news", "data": {"n": n}})
        for n in range(2):
            assert await stream.line() == {
                "channel": "news",
                "pub": {"data": {"n": n}, "offset": n + 1},
            }
        other = {"user": "hana", "session": "not-this-one", "disconnect": {"code": 4001}}
        await api(server, "disconnect", other)
        mine = {"user": "hana", "session": connect["session"], "disconnect": {"code": 4000}}
        await api(server, "disconnect", mine)
        assert (await stream.line())["disconnect"]["code"] == 4000
        assert await asyncio.wait_for(stream.reader.read(), TIMEOUT) == b""
    finally:
        stream.writer.close()


async def test_bad_connect_and_method(server: ServerProcess) -> None:
    bad = await open_stream(server, b"[1, 2")
    assert bad.status == 400
    bad.writer.close()
    wrong = await open_stream(server, b"", method="GET")
    assert wrong.status == 405
    wrong.writer.close()
