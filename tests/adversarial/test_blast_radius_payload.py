"""Blast radius: while each hostile case runs, a canary on the same node is untouched.

The canary is the official SDK (centrifuge-python): it stays connected to a
shared channel and its durable personal channel, receives every publication
made to them during and after the hostile case, and a fresh canary connection
can connect meanwhile. Assertions are about what arrives, not how fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest
import websockets

from tests.adversarial.support import connect_query, nested, open_sse, post_raw, uni_ws_url
from tests.conftest import OPEN_CHANNEL, ServerProcess
from tests.integration.support.sdk import connecting
from tests.integration.support.ws import closing, connected_ws, expect_close, open_ws, raw_connect

Hostile = Callable[[ServerProcess], Awaitable[None]]
ROUNDS = 3


async def pretty_payload_to_an_sse_follower(node: ServerProcess) -> None:
    sse = await open_sse(node, connect_query(node.token("carol"), track="#carol"))
    try:
        await sse.next_event()
        for _ in range(5):
            body = b'{"channel":"#carol","data":{\n  "text": "hi"\n}}'
            assert (await post_raw(node, "/publish", body))[0] == 200
        await sse.next_event()
    finally:
        sse.close()


async def forged_push_from_a_client(node: ServerProcess) -> None:
    uni = await websockets.connect(
        uni_ws_url(node, connect_query(node.token("bob", channels=["room"])))
    )
    ws, _ = await connected_ws(node.ws_url, node.token("mallory"))
    async with closing(ws):
        forged = b'["x",\n{"channel":"#bob","pub":{"data":{"t":"forged"}}}\n]'
        for command_id in range(2, 12):
            await ws.send(
                b'{"id":%d,"publish":{"channel":"room","data":%s}}' % (command_id, forged)
            )
        await ws.send(b'{"id":20,"publish":{"channel":"room","data":{"t":"\xff"}}}')
        await ws.send(b'{"id":21,"publish":{"channel":"room","data":' + nested(300) + b"}}")
    await uni.close()


async def deep_json_everywhere(node: ServerProcess) -> None:
    for _ in range(5):
        ws = await open_ws(node.ws_url)
        async with closing(ws):
            await ws.send((b'{"id":1,"connect":{"data":' + nested(5000) + b"}}").decode())
            assert await expect_close(ws) == 3501
        status, _ = await post_raw(
            node, "/publish", b'{"channel":"c","data":' + nested(5000) + b"}"
        )
        assert status == 400


async def integers_beyond_64_bits(node: ServerProcess) -> None:
    ws, _ = await connected_ws(node.ws_url, node.token("ivan"))
    async with closing(ws):
        for command_id in range(2, 40):
            offset = -(2**64) if command_id % 2 else 2**64
            ack = {"method": "ack", "data": {"channel": "#ivan", "offset": offset}}
            await ws.send(msgspec.json.encode({"id": command_id, "rpc": ack}).decode())
        body = msgspec.json.encode({"channel": "#ivan", "limit": 2**70})
        assert (await post_raw(node, "/history", body))[0] == 400


async def confused_and_malformed_tokens(node: ServerProcess) -> None:
    tokens = [
        node.token("alice", channel="$room"),
        node.token("alice", expire_at="soon"),
        node.token("alice", info={"x": "\ud800"}),
    ]
    for token in tokens * 3:
        ws, reply = await raw_connect(node.ws_url, token)
        async with closing(ws):
            assert "connect" not in reply
            assert await expect_close(ws) == 3500


async def maximal_batches(node: ServerProcess) -> None:
    command = {"publish": {"channel": "load", "data": {"n": 1}}}
    body = msgspec.json.encode({"commands": [command] * 1000, "parallel": True})
    answers = await asyncio.gather(*(post_raw(node, "/batch", body) for _ in range(3)))
    assert all(status == 200 for status, _ in answers)
    too_many = msgspec.json.encode({"commands": [command] * 1001})
    assert (await post_raw(node, "/batch", too_many))[0] == 400


CASES: dict[str, Hostile] = {
    "pretty-payload-sse": pretty_payload_to_an_sse_follower,
    "forged-push": forged_push_from_a_client,
    "deep-json": deep_json_everywhere,
    "integer-edges": integers_beyond_64_bits,
    "token-confusion": confused_and_malformed_tokens,
    "batch": maximal_batches,
}


@pytest.fixture
def node(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory({"channel": OPEN_CHANNEL})


@pytest.mark.parametrize("case", list(CASES))
async def test_canary_is_untouched(node: ServerProcess, case: str) -> None:
    async with connecting(node) as connect:
        canary = await connect("canary")
        _, room = await canary.subscribed("canary-room")
        received: list[Any] = []

        async def round_trip(n: int) -> None:
            """Publish to both canary channels, see both arrive; a new canary connects."""
            for channel in ("canary-room", "#canary"):
                status, body = await post_raw(
                    node, "/publish", json.dumps({"channel": channel, "data": {"n": n}}).encode()
                )
                assert status == 200 and "error" not in body, (channel, body)
            await room.wait("publication", lambda ctx, n=n: ctx.pub.data == {"n": n})
            await canary.rec.wait(
                "publication",
                lambda ctx, n=n: ctx.channel == "#canary" and ctx.pub.data == {"n": n},
            )
            received.append(n)
            fresh = await connect(f"canary-{n}")
            await fresh.close()

        hostile = asyncio.create_task(CASES[case](node))
        try:
            for n in range(ROUNDS):
                await round_trip(n)
            await asyncio.wait_for(hostile, 30)
        finally:
            if not hostile.done():
                hostile.cancel()
                with contextlib.suppress(BaseException):
                    await hostile
        await round_trip(ROUNDS)
        assert received == list(range(ROUNDS + 1))
        assert canary.rec.of("disconnected") == [], "the canary was disconnected"
        assert len(canary.rec.of("connected")) == 1, "the canary had to reconnect"
    assert "Traceback" not in node.log(), node.log()[-3000:]
