"""Every integer from the wire is 0 <= n < 2^63 (a history limit may also be -1: all).

Anything else, negative or beyond 64 bits, is error 107 for a client (the
connection stays open) and HTTP 400 with error 107 naming the field on the
API, before it can reach a store (where it overflowed SQLite and rolled back
other users' writes) or a timer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from tests.adversarial.support import post_raw
from tests.conftest import OPEN_CHANNEL, ServerProcess
from tests.core.conftest import settle
from tests.core.test_protobuf_clients import PbConn
from tests.integration.support.ws import (
    assert_open,
    closing,
    connected_ws,
    open_ws,
    recv_reply,
    send_command,
)
from tidings.core.node import Node
from tidings.protocol.centrifuge import messages as m
from tidings.protocol.centrifuge.protobuf_codec import ProtobufCodec

BAD = [-1, -(2**64), 2**63, 2**64 - 1, 2**64, 2**70, 10**40]


@pytest.fixture
def node(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory({"channel": OPEN_CHANNEL})


def encode(value: Any) -> str:
    # msgspec writes integers beyond 64 bits as they are, like a hostile client would.
    return msgspec.json.encode(value).decode()


async def test_client_integers_out_of_range_are_107(node: ServerProcess) -> None:
    ws, _ = await connected_ws(node.ws_url, node.token("alice"))
    async with closing(ws):
        assert "error" not in await send_command(ws, 2, subscribe={"channel": "room"})
        command_id = 10
        for value in BAD:
            requests: list[dict[str, Any]] = [
                {"history": {"channel": "room", "limit": value}},
                {"history": {"channel": "room", "limit": 1, "since": {"offset": value}}},
                {"subscribe": {"channel": f"r{command_id}", "recover": True, "offset": value}},
                {"rpc": {"method": "ack", "data": {"channel": "#alice", "offset": value}}},
            ]
            if value == -1:  # -1 is "every publication" for a limit
                requests.pop(0)
            for request in requests:
                command_id += 1
                await ws.send(encode({"id": command_id, **request}))
                reply = await recv_reply(ws, command_id)
                assert reply.get("error", {}).get("code") == 107, (request, reply)
        # In range, all is well; the connection was never closed.
        reply = await send_command(ws, 99, history={"channel": "room", "limit": -1})
        assert "error" not in reply, reply
        await assert_open(ws, 100)


async def test_a_connect_with_a_bad_recovery_hint_is_refused_before_connecting(
    node: ServerProcess,
) -> None:
    ws = await open_ws(node.ws_url)
    async with closing(ws):
        subs = {"#bob": {"recover": True, "offset": 2**64, "epoch": "x"}}
        command = {"id": 1, "connect": {"token": node.token("bob"), "subs": subs}}
        await ws.send(encode(command))
        reply = await recv_reply(ws, 1)
        assert reply["error"]["code"] == 107, reply


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("history", {"channel": "room", "limit": 2**70}),
        ("history", {"channel": "room", "limit": -2}),
        ("history", {"channel": "room", "since": {"offset": 2**64}}),
        ("history", {"channel": "room", "since": {"offset": -1}}),
        ("delivery_status", {"channel": "room", "offset": -(2**64)}),
        ("delivery_status", {"channel": "room", "offset": 2**63}),
        ("subscribe", {"user": "u", "channel": "room", "recover_since": {"offset": -5}}),
        ("refresh", {"user": "u", "expire_at": 2**64}),
        ("refresh", {"user": "u", "expire_at": -1}),
    ],
)
async def test_api_integers_out_of_range_are_400_naming_the_field(
    node: ServerProcess, method: str, body: dict[str, Any]
) -> None:
    status, answer = await post_raw(node, f"/{method}", msgspec.json.encode(body))
    assert status == 400, answer
    assert answer["error"]["code"] == 107
    assert "$." in answer["error"]["message"], "the message names the field"
    # The node is fine afterwards.
    status, answer = await post_raw(node, "/history", b'{"channel":"room","limit":-1}')
    assert status == 200 and "result" in answer, answer


async def test_api_rate_must_be_a_sane_number(node: ServerProcess) -> None:
    status, answer = await post_raw(node, "/broadcast_all", b'{"data":{},"rate":1e999}')
    assert (status, answer["error"]["code"]) == (400, 107)


async def test_protobuf_uint64_offsets_beyond_int64_are_107(node_factory: Any) -> None:
    """Protobuf carries uint64: values up to 2^64-1 arrive without any JSON parsing."""
    node: Node = node_factory()
    conn = PbConn(node, ProtobufCodec())
    await conn.connect_and_subscribe("pb", "room")
    since = m.StreamPosition(offset=2**64 - 1, epoch="e")
    (reply,) = await conn.send(
        m.Command(id=5, history=m.HistoryRequest(channel="room", limit=1, since=since))
    )
    assert reply.error is not None and reply.error.code == 107, reply
    sub = m.SubscribeRequest(channel="other", recover=True, offset=2**63)
    (reply,) = await conn.send(m.Command(id=6, subscribe=sub))
    assert reply.error is not None and reply.error.code == 107, reply
    await settle()
    assert not conn.transport.closed
