"""A response held open as a transport: head, connect, backpressure, hang-up, slot release."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from tests.core.conftest import make_settings, settle, token
from tidings.core.access import OpenConnections
from tidings.core.node import Node
from tidings.protocol.centrifuge.json_codec import JsonCodec
from tidings.transport.stream import NO_CACHE, ResponseStream, respond_preflight, stream_headers


class Socket(asyncio.Transport):
    """What a stream writes, and whether it closed or was aborted."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()
        self.closing = False
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.data += data

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.closing = self.aborted = True


class LineStream(ResponseStream):
    """The smallest stream: one JSON reply a line, the disconnect as the last line."""

    name = "line_stream"

    def start(self, connect: bytes) -> None:
        self._open(b"HEAD\n", JsonCodec(), connect, {"x-test": "1"})

    def write(self, data: bytes) -> None:
        self._transport.write(data + b"\n")

    def close(self, code: int, reason: str) -> None:
        if self._transport.is_closing():
            return
        self.write(json.dumps({"disconnect": {"code": code, "reason": reason}}).encode())
        self._hang_up()


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    created = Node(make_settings(client_close_timeout="50ms"))
    yield created
    await created.stop()


def lines(socket: Socket) -> list[bytes]:
    return bytes(socket.data).splitlines()


async def test_head_then_the_connect_reply_and_the_node_counts_the_client(node: Node) -> None:
    socket = Socket()
    stream = LineStream(node, socket, "10.0.0.1")
    stream.start(json.dumps({"id": 1, "connect": {"token": token("alice")}}).encode())
    await settle()
    head, reply = lines(socket)[:2]
    assert head == b"HEAD"
    assert json.loads(reply)["connect"]["client"]
    assert [c.user for c in node.hub.user_clients("alice")] == ["alice"]
    assert stream.remote_addr == "10.0.0.1"


async def test_paused_follows_the_socket_buffer(node: Node) -> None:
    stream = LineStream(node, Socket(), "10.0.0.1")
    stream.start(json.dumps({"id": 1, "connect": {"token": token("alice")}}).encode())
    assert not stream.paused
    stream.pause_writing()
    assert stream.paused
    stream.resume_writing()
    assert not stream.paused


async def test_close_hangs_up_and_aborts_a_socket_that_does_not_drain(node: Node) -> None:
    socket = Socket()
    stream = LineStream(node, socket, "10.0.0.1")
    stream.start(json.dumps({"id": 1, "connect": {"token": token("alice")}}).encode())
    await settle()
    stream.close(3000, "bye")
    assert json.loads(lines(socket)[-1]) == {"disconnect": {"code": 3000, "reason": "bye"}}
    assert socket.closing and not socket.aborted
    await asyncio.sleep(0.2)  # client_close_timeout is 50 ms
    assert socket.aborted


async def test_connection_lost_gives_the_slot_back_once_and_the_client_leaves(node: Node) -> None:
    counts = OpenConnections(per_ip=1, total_max=10)
    slot = counts.take("10.0.0.1")
    assert not isinstance(slot, int)
    stream = LineStream(node, Socket(), "10.0.0.1", slot)
    stream.start(json.dumps({"id": 1, "connect": {"token": token("alice")}}).encode())
    await settle()
    assert counts.open_from("10.0.0.1") == 1
    stream.connection_lost(None)
    stream.connection_lost(None)
    await settle()
    assert counts.open_from("10.0.0.1") == 0
    assert node.hub.user_clients("alice") == []


def test_stream_headers_add_cors_only_for_an_origin() -> None:
    assert stream_headers("") == NO_CACHE
    assert stream_headers("https://app.example") == {
        **NO_CACHE,
        "Access-Control-Allow-Origin": "https://app.example",
        "Vary": "Origin",
    }


@pytest.mark.parametrize(
    ("origin", "allowed"), [("https://app.example", "https://app.example"), ("", "*")]
)
def test_preflight_answers_204_with_the_methods_and_headers(origin: str, allowed: str) -> None:
    socket = Socket()
    respond_preflight(socket, origin, "GET, POST", "Content-Type, Last-Event-ID")
    head = bytes(socket.data).decode()
    assert head.startswith("HTTP/1.1 204 ")
    assert f"Access-Control-Allow-Origin: {allowed}\r\n" in head
    assert "Access-Control-Allow-Methods: GET, POST\r\n" in head
    assert "Access-Control-Allow-Headers: Content-Type, Last-Event-ID\r\n" in head
    assert socket.closing
