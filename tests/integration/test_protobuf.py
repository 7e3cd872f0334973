"""centrifuge-python in Protobuf mode against a real `tidings serve` process.

The SDK negotiates the `centrifuge-protobuf` subprotocol and carries payloads
as bytes; the server API publishes JSON, which protobuf clients receive as
its UTF-8 bytes. JSON and protobuf clients share channels.

The SDK tests that are the same in both encodings (publication, history,
presence, join/leave, recovery) run for protobuf too, in test_sdk.py. Here are
the tests of protobuf itself: mixed JSON/protobuf channels, the refusal of
non-JSON payloads, pings, negotiation and malformed frames.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import websockets
from cent import AsyncClient, PublishRequest
from centrifuge import ReplyError

from tests.conftest import OPEN_CHANNEL, ServerProcess
from tests.integration.support.sdk import TIMEOUT, Conn, connecting, loads
from tidings.protocol.centrifuge import messages as m
from tidings.protocol.centrifuge.protobuf_codec import (
    ProtobufCodec,
    decode_message,
    encode_message,
    read_uvarint,
    uvarint,
)


@pytest.fixture
async def connect(server: ServerProcess) -> AsyncIterator[Callable[..., Any]]:
    """`await connect(user, protobuf=True, srv=None, **client_kwargs)` -> a connected Conn."""
    async with connecting(server) as connect_json:

        async def factory(
            user: str, protobuf: bool = True, srv: ServerProcess | None = None, **kwargs: Any
        ) -> Conn:
            return await connect_json(user, srv, use_protobuf=protobuf, **kwargs)

        yield factory


async def test_json_and_protobuf_clients_receive_the_same_publication(
    connect: Any, api: AsyncClient
) -> None:
    json_conn = await connect("jay", protobuf=False)
    pb_conn = await connect("pat")
    _, json_rec = await json_conn.subscribed("mixed")
    _, pb_rec = await pb_conn.subscribed("mixed")

    await api.publish(PublishRequest(channel="mixed", data={"n": 1, "text": "é"}))
    (json_ctx,) = await json_rec.wait("publication")
    (pb_ctx,) = await pb_rec.wait("publication")
    assert json_ctx.pub.data == loads(pb_ctx.pub.data) == {"n": 1, "text": "é"}
    assert json_ctx.pub.offset == pb_ctx.pub.offset == 1


async def test_protobuf_client_publish_reaches_json_and_protobuf_clients(connect: Any) -> None:
    json_conn = await connect("jay", protobuf=False)
    alice, bob = await connect("alice"), await connect("bob")
    _, json_rec = await json_conn.subscribed("room")
    alice_sub, _ = await alice.subscribed("room")
    _, bob_rec = await bob.subscribed("room")

    await asyncio.wait_for(alice_sub.publish(b'{"text":"hi"}'), TIMEOUT)
    (bob_ctx,) = await bob_rec.wait("publication")
    assert bob_ctx.pub.data == b'{"text":"hi"}'
    assert bob_ctx.pub.info.user == "alice"
    assert bob_ctx.pub.info.client == alice.id
    (json_ctx,) = await json_rec.wait("publication")
    assert json_ctx.pub.data == {"text": "hi"}
    assert json_ctx.pub.info.user == "alice"


async def test_json_client_publish_reaches_protobuf_client(connect: Any) -> None:
    json_conn = await connect("jay", protobuf=False)
    pb_conn = await connect("pat")
    json_sub, _ = await json_conn.subscribed("room")
    _, pb_rec = await pb_conn.subscribed("room")

    await asyncio.wait_for(json_sub.publish({"from": "json"}), TIMEOUT)
    (ctx,) = await pb_rec.wait("publication")
    assert loads(ctx.pub.data) == {"from": "json"}


async def test_non_json_publish_from_protobuf_client_is_refused(connect: Any) -> None:
    json_conn = await connect("jay", protobuf=False)
    alice = await connect("alice")
    _, json_rec = await json_conn.subscribed("room")
    alice_sub, _ = await alice.subscribed("room")

    with pytest.raises(ReplyError) as err:
        await asyncio.wait_for(alice_sub.publish(b"\x00\x01 binary"), TIMEOUT)
    assert err.value.code == 107
    # The connection stays usable and JSON subscribers saw nothing broken.
    await asyncio.wait_for(alice_sub.publish(b'{"ok":true}'), TIMEOUT)
    (ctx,) = await json_rec.wait("publication")
    assert ctx.pub.data == {"ok": True}


async def test_pings_are_answered_and_the_connection_stays(server_factory: Any) -> None:
    srv = server_factory(
        {"channel": OPEN_CHANNEL, "client_ping_interval": 1, "client_pong_timeout": 0.5}
    )
    conn = Conn(srv, "ivy", use_protobuf=True)
    try:
        await asyncio.wait_for(conn.connect(), TIMEOUT)
        await asyncio.sleep(2.5)
        assert conn.client.state.value == "connected"
        assert conn.rec.of("disconnected") == [] and len(conn.rec.of("connected")) == 1
    finally:
        await asyncio.wait_for(conn.client.disconnect(), 5)


# --- negotiation, on the wire ----------------------------------------------------


def _frame(*commands: m.Command) -> bytes:
    return b"".join(uvarint(len(body)) + body for body in map(encode_message, commands))


def _replies(frame: bytes | str) -> list[m.Reply]:
    assert isinstance(frame, bytes), "protobuf replies come in binary frames"
    replies, pos = [], 0
    while pos < len(frame):
        length, pos = read_uvarint(frame, pos, len(frame))
        replies.append(decode_message(frame[pos : pos + length], m.Reply))
        pos += length
    return replies


@pytest.mark.parametrize("how", ["subprotocol", "query"])
async def test_negotiation(server: ServerProcess, how: str) -> None:
    url = server.ws_url + ("?format=protobuf" if how == "query" else "")
    options: dict[str, Any] = {"subprotocols": ["centrifuge-protobuf"]} if how != "query" else {}
    async with websockets.connect(url, open_timeout=TIMEOUT, **options) as ws:
        expected = "centrifuge-protobuf" if how == "subprotocol" else None
        assert ws.subprotocol == expected
        connect = m.ConnectRequest(token=server.token("neo"), name="raw")
        await ws.send(_frame(m.Command(id=1, connect=connect)))
        (reply,) = _replies(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert reply.id == 1 and reply.connect is not None and reply.connect.client

        subscribe = m.SubscribeRequest(channel="wire")
        publish = m.PublishRequest(channel="wire", data=m.raw(b'{"x":1}'))
        await ws.send(
            _frame(m.Command(id=2, subscribe=subscribe), m.Command(id=3, publish=publish))
        )
        seen: list[m.Reply] = []
        while not any(r.push and r.push.pub for r in seen) or not any(r.id == 3 for r in seen):
            seen += _replies(await asyncio.wait_for(ws.recv(), TIMEOUT))
        (pub,) = [r.push.pub for r in seen if r.push and r.push.pub]
        assert pub.data == m.raw(b'{"x":1}') and pub.offset == 1
        assert pub.info is not None and pub.info.user == "neo"


async def test_plain_connection_stays_json(server: ServerProcess) -> None:
    async with websockets.connect(server.ws_url, open_timeout=TIMEOUT) as ws:
        assert ws.subprotocol is None
        await ws.send(json.dumps({"id": 1, "connect": {"token": server.token("neo")}}))
        reply = await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert isinstance(reply, str) and json.loads(reply)["connect"]["client"]


async def test_malformed_protobuf_closes_3501(server: ServerProcess) -> None:
    async with websockets.connect(server.ws_url + "?format=protobuf") as ws:
        await ws.send(b"\x05\x08")
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert ws.close_code == 3501


def test_codec_of_negotiation_is_shared() -> None:
    from tidings.transport.websocket import PROTOBUF_CODEC

    assert isinstance(PROTOBUF_CODEC, ProtobufCodec)
