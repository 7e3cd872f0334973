"""The emulation endpoints over the real wire, with raw sockets: what hostile requests get.

An emulation request for a session or node the server does not know, an
oversized or malformed body, a wrong method: each gets a clear 4xx, and a
client whose stream is open keeps working meanwhile.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import OPEN_CHANNEL, ServerProcess
from tests.integration.support.api import api_body as api

TIMEOUT = 10.0


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory(
        {"channel": OPEN_CHANNEL, "personal_channel": False, "client_max_message_size": 32_768}
    )


async def request(
    server: ServerProcess, method: str, path: str, body: bytes = b"", content_type: str = ""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    writer.write(head.encode() + b"\r\n" + body)
    status_line = await asyncio.wait_for(reader.readline(), TIMEOUT)
    while (await asyncio.wait_for(reader.readline(), TIMEOUT)) not in (b"\r\n", b""):
        pass
    return reader, writer, int(status_line.split()[1])


async def call(server: ServerProcess, body: bytes, content_type: str = "application/json") -> int:
    _, writer, status = await request(server, "POST", "/emulation", body, content_type)
    writer.close()
    return status


@dataclass
class Stream:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    session: str
    node: str

    async def reply(self) -> dict[str, Any]:
        """The next line that is not a ping."""
        while True:
            line = await asyncio.wait_for(self.reader.readline(), TIMEOUT)
            assert line, "stream closed"
            reply: dict[str, Any] = json.loads(line)
            if reply:
                return reply

    def emulation(self, *commands: dict[str, Any]) -> bytes:
        data = "\n".join(json.dumps(c) for c in commands)
        return json.dumps({"session": self.session, "node": self.node, "data": data}).encode()


async def open_stream(server: ServerProcess, user: str) -> Stream:
    connect = json.dumps({"id": 1, "connect": {"token": server.token(user)}}).encode()
    reader, writer, status = await request(
        server, "POST", "/connection/http_stream", connect, "application/json"
    )
    assert status == 200
    line = await asyncio.wait_for(reader.readline(), TIMEOUT)
    result = json.loads(line)["connect"]
    return Stream(reader, writer, result["session"], result["node"])


async def test_commands_reach_only_their_session(server: ServerProcess) -> None:
    alice, bob = await open_stream(server, "alice"), await open_stream(server, "bob")
    assert alice.session != bob.session
    subscribe = {"id": 2, "subscribe": {"channel": "room"}}
    assert await call(server, alice.emulation(subscribe)) == 204
    assert "subscribe" in await alice.reply()
    await api(server, "publish", {"channel": "room", "data": {"n": 1}})
    assert (await alice.reply())["push"]["pub"]["data"] == {"n": 1}
    # bob never subscribed: his next reply is the answer to his own command.
    assert await call(server, bob.emulation({"id": 7, "presence_stats": {"channel": "x"}})) == 204
    reply = await bob.reply()
    assert reply["id"] == 7


async def test_hostile_emulation_requests(server: ServerProcess) -> None:
    alice = await open_stream(server, "alice")
    assert await call(server, alice.emulation({"id": 2, "subscribe": {"channel": "room"}})) == 204
    assert "subscribe" in await alice.reply()

    unknown = {"session": "no-such-session", "node": alice.node, "data": '{"id":1,"ping":{}}'}
    assert await call(server, json.dumps(unknown).encode()) == 404
    other_node = {**unknown, "session": alice.session, "node": "another-node"}
    assert await call(server, json.dumps(other_node).encode()) == 404
    assert await call(server, b"garbage") == 400
    assert await call(server, b"\xff\x01\x02", "application/octet-stream") == 400
    assert await call(server, b'{"session": "x"}') == 400
    # Above the client port's body limit: refused from the head alone (the body is
    # not sent here: the server closes without reading it, which could reset the socket).
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST /emulation HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n")
    status_line = await asyncio.wait_for(reader.readline(), TIMEOUT)
    writer.close()
    assert status_line.split()[1] == b"413"
    # Within it, but above client_max_message_size (the test server's is smaller).
    big = {"session": alice.session, "node": alice.node, "data": "x" * 40_000}
    assert await call(server, json.dumps(big).encode()) == 413
    _, writer, status = await request(server, "GET", "/emulation")
    writer.close()
    assert status == 405
    _, writer, status = await request(server, "GET", "/connection/http_stream")
    writer.close()
    assert status == 405
    _, writer, status = await request(
        server, "POST", "/connection/http_stream", b"", "application/json"
    )
    writer.close()
    assert status == 400

    # Alice's connection is untouched by all of that.
    await api(server, "publish", {"channel": "room", "data": {"n": 1}})
    assert (await alice.reply())["push"]["pub"]["data"] == {"n": 1}
    publish = {"id": 3, "publish": {"channel": "room", "data": 2}}
    assert await call(server, alice.emulation(publish)) == 204
    replies = [await alice.reply(), await alice.reply()]
    assert {"id": 3, "publish": {}} in replies


async def test_garbage_commands_close_only_that_session(server: ServerProcess) -> None:
    """Undecodable commands in a well-formed request end that session (as on a WebSocket)."""
    alice, bob = await open_stream(server, "alice"), await open_stream(server, "bob")
    body = json.dumps({"session": alice.session, "node": alice.node, "data": "{nope"}).encode()
    assert await call(server, body) == 204
    assert "disconnect" in (await alice.reply())["push"]
    assert await call(server, body) == 404  # the session is gone with its stream
    assert await call(server, bob.emulation({"id": 2, "subscribe": {"channel": "room"}})) == 204
    assert "subscribe" in await bob.reply()


async def test_server_api_session_selects_one_emulated_connection(server: ServerProcess) -> None:
    first, second = await open_stream(server, "ann"), await open_stream(server, "ann")
    await api(server, "disconnect", {"user": "ann", "session": second.session})
    assert (await second.reply())["push"]["disconnect"]["code"] == 3503
    # The other connection of the same user is untouched.
    assert await call(server, first.emulation({"id": 2, "subscribe": {"channel": "room"}})) == 204
    assert "subscribe" in await first.reply()


async def test_pings_on_the_stream_pongs_through_emulation(
    server_factory: Callable[..., ServerProcess],
) -> None:
    """The server pings on the stream; a pong sent to /emulation keeps the session."""
    # A pong has most of an interval to arrive: generous, the machine may be busy.
    server = server_factory({"client_ping_interval": 2.0, "client_pong_timeout": 1.9})
    stream = await open_stream(server, "pat")
    for _ in range(2):
        line = await asyncio.wait_for(stream.reader.readline(), TIMEOUT)
        assert json.loads(line) == {}  # a ping
        assert await call(server, stream.emulation({})) == 204  # the pong
    # Still connected: a command is answered.
    stats = {"id": 5, "presence_stats": {"channel": "x"}}
    assert await call(server, stream.emulation(stats)) == 204
    assert (await stream.reply())["id"] == 5
