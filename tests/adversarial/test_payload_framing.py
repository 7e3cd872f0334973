"""Payloads that would break newline framing, UTF-8 or decoders never reach a subscriber.

Against a real `tidings serve`: `data` and `info` are checked once where they
enter (client command, server API) and relayed compact, so a pretty-printed
payload arrives on one line everywhere, a publisher cannot forge a line of
its own on SSE or uni_websocket streams, and invalid payloads are refused
with 107 (HTTP 400 on the API) that says what is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.adversarial.support import (
    STEP,
    connect_query,
    nested,
    open_sse,
    post_raw,
    uni_ws_url,
)
from tests.conftest import OPEN_CHANNEL, ServerProcess
from tests.integration.support.sdk import connecting, loads
from tests.integration.support.ws import (
    closing,
    connected_ws,
    parse_frame,
    recv_messages,
    recv_reply,
    send_command,
    subscribe,
)

PRETTY = b'{\n  "text": "hi",\n  "list": [\n    1,\n    2\n  ]\n}'
FORGED = {"channel": "#bob", "pub": {"data": {"text": "transfer approved"}, "offset": 1}}


@pytest.fixture
def node(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory({"channel": OPEN_CHANNEL})


async def publish_raw(server: ServerProcess, channel: str, data: bytes) -> tuple[int, Any]:
    body = b'{"channel":' + json.dumps(channel).encode() + b',"data":' + data + b"}"
    return await post_raw(server, "/publish", body)


async def pub_of(ws: ClientConnection, channel: str) -> dict[str, Any]:
    """The next publication pushed for `channel` (every line must be a JSON object)."""
    async with asyncio.timeout(STEP):
        while True:
            for message in await recv_messages(ws):
                push = message.get("push", {})
                if push.get("channel") == channel and "pub" in push:
                    pub: dict[str, Any] = push["pub"]
                    return pub


async def test_pretty_api_publication_reaches_sse_and_the_node_keeps_delivering(
    node: ServerProcess,
) -> None:
    """The reported stall: one pretty payload to an SSE follower stopped every delivery."""
    sse = await open_sse(node, connect_query(node.token("carol"), track="#carol"))
    ws, _ = await connected_ws(node.ws_url, node.token("dave"))
    async with closing(ws):
        try:
            assert "connect" in json.loads(await sse.next_event())
            await subscribe(ws, "news")
            status, body = await publish_raw(node, "#carol", PRETTY)
            assert (status, "error" in body) == (200, False), body
            event = await sse.next_event()
            assert "\n" not in event
            assert json.loads(event)["pub"]["data"] == json.loads(PRETTY)

            # Everything else on the node still flows: pushes, replies, new connections.
            await publish_raw(node, "news", b'{"after": 1}')
            assert (await pub_of(ws, "news"))["data"] == {"after": 1}
            late, connect = await connected_ws(node.ws_url, node.token("erin"))
            await late.close()
            assert connect["client"]
            status, _ = await publish_raw(node, "#carol", b'{"after": 2}')
            assert json.loads(await sse.next_event())["pub"]["data"] == {"after": 2}
        finally:
            sse.close()


async def test_pretty_payload_from_api_and_client_arrives_on_one_line(
    node: ServerProcess,
) -> None:
    reader, _ = await connected_ws(node.ws_url, node.token("reader"))
    writer, _ = await connected_ws(node.ws_url, node.token("writer"))
    async with closing(reader, writer):
        await subscribe(reader, "room")
        await subscribe(writer, "room")
        await publish_raw(node, "room", PRETTY)
        # A client can send one too: the JSON encoding parses a command across lines.
        await writer.send(b'{"id":5,"publish":{"channel":"room","data":' + PRETTY + b"}}")
        assert "error" not in await recv_reply(writer, 5)
        seen: list[Any] = []
        async with asyncio.timeout(STEP):
            while len(seen) < 2:
                frame = await reader.recv()
                lines = str(frame).split("\n")
                for line in lines:  # each line alone is a whole message
                    message = json.loads(line)
                    if "pub" in message.get("push", {}):
                        seen.append(message["push"]["pub"]["data"])
        assert seen == [json.loads(PRETTY)] * 2


async def test_publisher_cannot_forge_a_push_on_sse_or_uni_websocket(
    node: ServerProcess,
) -> None:
    forged_lines = b'["x",\n' + json.dumps(FORGED).encode() + b"\n]"
    token = node.token("bob", channels=["room"])
    sse = await open_sse(node, connect_query(token))
    uni = await websockets.connect(uni_ws_url(node, connect_query(token)))
    attacker, _ = await connected_ws(node.ws_url, node.token("mallory"))
    async with closing(attacker):
        try:
            assert "connect" in json.loads(await sse.next_event())
            uni_lines: list[str] = []
            await _uni_lines(uni, uni_lines, 1)
            frame = b'{"id":3,"publish":{"channel":"room","data":' + forged_lines + b"}}"
            await attacker.send(frame)  # as a JSON client (commands may span lines)
            assert "error" not in await recv_reply(attacker, 3)
            # And as the API would relay it from a careless back end.
            await publish_raw(node, "room", forged_lines)

            # Read what each stream sends for the two publications (1 line each, or
            # the 3 pieces that splitting them made), then look at every line.
            sse_lines = [await sse.next_event() for _ in range(2)]
            with contextlib.suppress(TimeoutError):
                sse_lines += [await sse.next_event(within=0.5) for _ in range(4)]
            await _uni_lines(uni, uni_lines, 3, within=STEP)
            for text in sse_lines + uni_lines:
                assert _channel_of(text) != "#bob", f"forged line: {text}"
            for lines in (sse_lines, uni_lines[1:]):
                pushes = [json.loads(text) for text in lines if text != "{}"]
                assert [p["channel"] for p in pushes] == ["room", "room"]
                assert [p["pub"]["data"] for p in pushes] == [["x", FORGED]] * 2
        finally:
            sse.close()
            await uni.close()


def _channel_of(line: str) -> str:
    try:
        value = json.loads(line)
    except ValueError:
        return ""
    return str(value.get("channel", "")) if isinstance(value, dict) else ""


async def _uni_lines(ws: Any, seen: list[str], count: int, within: float = STEP) -> None:
    """Read uni_websocket frames until `seen` has `count` lines that are not pings.

    With `within` short it returns quietly at the deadline (extra lines are what
    a forged payload would add; none are expected).
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            while len([line for line in seen if line != "{}"]) < count:
                seen.extend(str(await ws.recv()).split("\n"))


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b'{"t":"\xff\xfe"}', "not valid UTF-8"),
        (b'{"t":"\xed\xa0\x80"}', "not valid UTF-8"),  # an encoded surrogate
        (b'"\\ud800"', "not valid JSON"),  # a lone surrogate escape
        (b'{"t": 1} 2', "not valid JSON"),
        (nested(200), "nested deeper than 128"),
    ],
)
async def test_invalid_payloads_are_refused_by_the_api_with_400(
    node: ServerProcess, data: bytes, problem: str
) -> None:
    status, body = await publish_raw(node, "room", data)
    assert status == 400
    assert body["error"]["code"] == 107
    assert problem in body["error"]["message"]
    # The same in every method that takes a payload.
    user = b'"user":"u","channel":"room","info":'
    status, body = await post_raw(node, "/subscribe", b"{" + user + data + b"}")
    assert (status, body["error"]["code"]) == (400, 107)
    assert problem in body["error"]["message"]
    broadcast = b'{"channels":["a","b"],"data":' + data + b"}"
    status, body = await post_raw(node, "/broadcast", broadcast)
    assert (status, body["error"]["code"]) == (400, 107)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b'{"t":"\xff\xfe"}', "not valid UTF-8"),
        (nested(200), "nested deeper than 128"),
    ],
)
async def test_invalid_payloads_are_refused_to_a_client_with_107(
    node: ServerProcess, data: bytes, problem: str
) -> None:
    ws, _ = await connected_ws(node.ws_url, node.token("mallory"))
    reader, _ = await connected_ws(node.ws_url, node.token("reader"))
    async with closing(ws, reader):
        await subscribe(ws, "room")
        await subscribe(reader, "room")
        # Binary frames carry any bytes; the JSON codec accepts them like text.
        for command_id, method in ((3, b"publish"), (4, b"rpc")):
            body = b'{"channel":"room","data":' + data + b"}"
            if method == b"rpc":
                body = b'{"method":"ack","data":' + data + b"}"
            await ws.send(b'{"id":%d,"%s":%s}' % (command_id, method, body))
            reply = await recv_reply(ws, command_id)
            assert reply["error"]["code"] == 107, reply
            assert problem in reply["error"]["message"]
        # The connection is still fine, and nothing reached the subscriber.
        reply = await send_command(ws, 5, publish={"channel": "room", "data": {"ok": True}})
        assert "error" not in reply
        assert (await pub_of(reader, "room"))["data"] == {"ok": True}


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
async def test_sdk_receives_a_pretty_printed_publication(
    node: ServerProcess, encoding: str
) -> None:
    """centrifuge-python split a multi-line push, failed to decode it and looped."""

    def data_of(ctx: Any) -> Any:
        return loads(ctx.pub.data) if encoding == "protobuf" else ctx.pub.data

    async with connecting(node) as connect:
        conn = await connect("sdk-user", use_protobuf=encoding == "protobuf")
        _, rec = await conn.subscribed("room")
        status, _ = await publish_raw(node, "room", PRETTY)
        assert status == 200
        (ctx,) = await rec.wait("publication")
        assert data_of(ctx) == json.loads(PRETTY)
        if encoding == "protobuf":
            assert ctx.pub.data == json.dumps(json.loads(PRETTY), separators=(",", ":")).encode()
        await publish_raw(node, "room", b'{"next": true}')
        await rec.wait("publication", count=2)
        assert [data_of(c) for c in rec.of("publication")] == [json.loads(PRETTY), {"next": True}]
        assert conn.rec.of("disconnected") == []
        assert rec.of("unsubscribed") == []
        assert len(conn.rec.of("connected")) == 1, "the SDK did not reconnect"


def test_parse_frame_helper_is_strict() -> None:
    """The helper the raw tests use fails on a push split over lines (so they can fail)."""
    with pytest.raises(json.JSONDecodeError):
        parse_frame('{"push":{"pub":{"data":{\n"a":1}}}}')
