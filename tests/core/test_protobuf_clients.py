"""Protobuf and JSON clients on one in-process node: one encoding per format, shared channels."""

from __future__ import annotations

from typing import Any

import msgspec

from tests.core.conftest import Conn, settle, settle_client, token
from tidings.core.node import Node
from tidings.protocol.centrifuge import messages as m
from tidings.protocol.centrifuge.json_codec import JsonCodec
from tidings.protocol.centrifuge.protobuf_codec import (
    ProtobufCodec,
    decode_message,
    encode_message,
    read_uvarint,
    uvarint,
)
from tidings.testing import MemoryTransport


class CountingProtobuf(ProtobufCodec):
    def __init__(self) -> None:
        super().__init__()
        self.encoded: list[m.Reply] = []

    def encode(self, reply: m.Reply) -> bytes:
        self.encoded.append(reply)
        return super().encode(reply)


class CountingJson(JsonCodec):
    def __init__(self) -> None:
        super().__init__()
        self.encoded: list[m.Reply] = []

    def encode(self, reply: m.Reply) -> bytes:
        self.encoded.append(reply)
        return super().encode(reply)


class PbConn:
    """A protobuf client on the node, speaking typed commands and replies."""

    def __init__(self, node: Node, codec: ProtobufCodec) -> None:
        self.transport = MemoryTransport()
        self.client = node.accept(self.transport, codec)

    async def send(self, *commands: m.Command) -> list[m.Reply]:
        bodies = [encode_message(c) for c in commands]
        self.client.handle_frame(b"".join(uvarint(len(b)) + b for b in bodies))
        await settle_client(self.client)
        return self.take()

    def take(self) -> list[m.Reply]:
        replies = []
        for frame in self.transport.frames:
            pos = 0
            while pos < len(frame):
                length, pos = read_uvarint(frame, pos, len(frame))
                replies.append(decode_message(frame[pos : pos + length], m.Reply))
                pos += length
        self.transport.frames.clear()
        return replies

    async def connect_and_subscribe(self, user: str, channel: str) -> None:
        (reply,) = await self.send(m.Command(id=1, connect=m.ConnectRequest(token=token(user))))
        assert reply.connect is not None, reply
        replies = await self.send(m.Command(id=2, subscribe=m.SubscribeRequest(channel=channel)))
        assert any(r.id == 2 and r.subscribe is not None for r in replies), replies


def pubs(replies: list[m.Reply]) -> list[m.Publication]:
    return [r.push.pub for r in replies if r.push is not None and r.push.pub is not None]


def json_pubs(replies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r["push"]["pub"] for r in replies if "pub" in r.get("push", {})]


async def test_a_publication_is_encoded_once_per_format(node: Node) -> None:
    node.codec = json_codec = CountingJson()
    protobuf = CountingProtobuf()
    json_clients = [Conn(node) for _ in range(3)]
    for conn in json_clients:
        await conn.connect("j")
        await conn.subscribe("news")
    pb_clients = [PbConn(node, protobuf) for _ in range(3)]
    for i, pb_conn in enumerate(pb_clients):
        await pb_conn.connect_and_subscribe(f"p{i}", "news")
    for conn in json_clients:
        conn.transport.take()
    json_codec.encoded.clear()
    protobuf.encoded.clear()

    await node.publish("news", m.raw(b'{"text":"hi"}'))
    await settle()

    assert [r.push.pub for r in json_codec.encoded if r.push] == [
        m.Publication(data=m.raw(b'{"text":"hi"}'), offset=1)
    ]
    assert len(protobuf.encoded) == 1
    for conn in json_clients:
        assert [p["data"] for p in json_pubs(conn.transport.take())] == [{"text": "hi"}]
    for pb_conn in pb_clients:
        assert pubs(pb_conn.take()) == [m.Publication(data=m.raw(b'{"text":"hi"}'), offset=1)]


async def test_protobuf_publish_reaches_json_and_protobuf_subscribers(node: Node) -> None:
    json_conn = Conn(node)
    await json_conn.connect("j")
    await json_conn.subscribe("chat")
    alice, bob = PbConn(node, ProtobufCodec()), PbConn(node, ProtobufCodec())
    await alice.connect_and_subscribe("alice", "chat")
    await bob.connect_and_subscribe("bob", "chat")
    json_conn.transport.take()
    bob.take()

    publish = m.PublishRequest(channel="chat", data=m.raw(b'{"n":1}'))
    replies = await alice.send(m.Command(id=3, publish=publish))
    assert any(r.id == 3 and r.publish is not None and r.error is None for r in replies), replies
    await settle()

    (pub,) = json_pubs(json_conn.transport.take())
    assert pub["data"] == {"n": 1}
    assert pub["info"]["user"] == "alice"
    (bob_pub,) = pubs(bob.take())
    assert bob_pub.data == m.raw(b'{"n":1}')
    assert bob_pub.info is not None and bob_pub.info.user == "alice"


async def test_protobuf_publish_of_non_json_data_is_refused_with_107(node: Node) -> None:
    json_conn = Conn(node)
    await json_conn.connect("j")
    await json_conn.subscribe("chat")
    alice = PbConn(node, ProtobufCodec())
    await alice.connect_and_subscribe("alice", "chat")
    json_conn.transport.take()

    for data in (b"\x00\x01binary", b'"\xff"', b"{not json}"):
        publish = m.PublishRequest(channel="chat", data=m.raw(data))
        (reply,) = await alice.send(m.Command(id=5, publish=publish))
        assert reply.error is not None and reply.error.code == 107
        assert reply.error.message.startswith("data: not valid"), reply.error.message
    await settle()
    assert json_pubs(json_conn.transport.take()) == []
    assert not alice.transport.closed


async def test_protobuf_ping_and_pong(node: Node) -> None:
    alice = PbConn(node, ProtobufCodec())
    await alice.connect_and_subscribe("alice", "chat")
    alice.client.send_ping()
    await settle()
    assert alice.transport.frames == [b"\x00"]
    alice.transport.frames.clear()
    alice.client.handle_frame(b"\x00")  # an empty command: the pong
    await settle()
    assert not alice.transport.closed


async def test_malformed_protobuf_frame_closes_3501(node: Node) -> None:
    alice = PbConn(node, ProtobufCodec())
    alice.client.handle_frame(b"\x05\x08")
    await settle()
    assert alice.transport.close_code == 3501


def test_json_replies_of_protobuf_published_data_stay_valid_json() -> None:
    # What the JSON subscriber of a protobuf publication receives is valid JSON.
    reply = m.Reply(push=m.Push(channel="c", pub=m.Publication(data=m.raw(b' {"a": [1]} '))))
    assert msgspec.json.decode(JsonCodec().encode(reply))["push"]["pub"]["data"] == {"a": [1]}
