"""Deeply nested JSON anywhere on the wire is a bad request, never a RecursionError.

Recursive decoders (msgspec, Python's json) give up near 1,000 levels. Every
place that decodes JSON from outside answers such input as the protocol says
for a bad request: WebSocket close 3501, API HTTP 400 with error 107, SSE and
uni_websocket a refusal, while the node goes on serving everyone else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import urlencode

import aiohttp
import pytest
import websockets

from tests.adversarial.support import STEP, connect_query, nested, post_raw, uni_ws_url
from tests.conftest import OPEN_CHANNEL, ServerProcess
from tests.integration.support.ws import (
    assert_open,
    closing,
    connected_ws,
    expect_close,
    open_ws,
)

DEEP = 5000  # far beyond any recursion limit
#: Deep enough for any recursive decoder, short enough for a URL (16 KiB request head).
DEEP_URL = 1500
BAD_REQUEST = 3501


@pytest.fixture
def node(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory({"channel": OPEN_CHANNEL, "personal_channel": False})


@pytest.mark.parametrize(
    "frame",
    [
        nested(DEEP),
        b'{"id":1,"connect":{"data":' + nested(DEEP) + b"}}",
        b'{"id":1,"connect":{"subs":' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"}}",
    ],
    ids=["bare", "in-a-raw-field", "in-a-typed-field"],
)
async def test_websocket_closes_3501_and_others_carry_on(node: ServerProcess, frame: bytes) -> None:
    canary, _ = await connected_ws(node.ws_url, node.token("canary"))
    hostile = await open_ws(node.ws_url)
    async with closing(canary, hostile):
        await hostile.send(frame.decode())
        assert await expect_close(hostile) == BAD_REQUEST
        await assert_open(canary, 9)
        assert "RecursionError" not in node.log()


async def test_websocket_deep_payload_after_connect_is_107_not_a_close(node: ServerProcess) -> None:
    ws, _ = await connected_ws(node.ws_url, node.token("u"))
    async with closing(ws):
        # 300 levels: msgspec still parses the frame, the payload check refuses it.
        await ws.send(b'{"id":2,"publish":{"channel":"c","data":' + nested(300) + b"}}")
        frame = json.loads(await ws.recv())
        assert frame["id"] == 2 and frame["error"]["code"] == 107
        await assert_open(ws, 3)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/publish", b'{"channel":"c","data":' + nested(DEEP) + b"}"),
        ("/subscribe", b'{"user":"u","channel":"c","data":' + nested(DEEP) + b"}"),
        (
            "/publish",
            b'{"channel":"c","data":1,"tags":' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"}",
        ),
        ("/publish", nested(DEEP)),
        ("/batch", b'{"commands":[{"publish":' + nested(DEEP) + b"}]}"),
        ("", b'{"method":"publish","params":' + nested(DEEP) + b"}"),
    ],
    ids=["data", "subscribe-data", "typed-field", "body", "batch", "legacy-envelope"],
)
async def test_api_answers_400_with_error_107(node: ServerProcess, path: str, body: bytes) -> None:
    status, answer = await post_raw(node, path, body)
    assert status == 400, answer
    assert answer["error"]["code"] == 107
    status, _ = await post_raw(node, "/info", b"{}")
    assert status == 200


async def test_batch_command_nested_too_deep_is_an_error_reply(node: ServerProcess) -> None:
    """Inside a batch, one deep command fails alone (the batch body itself is fine)."""
    body = b'{"commands":[{"publish":{"channel":"c","data":' + nested(300) + b'}},{"info":{}}]}'
    status, answer = await post_raw(node, "/batch", body)
    assert status == 200
    first, second = answer["replies"]
    assert first["error"]["code"] == 107
    assert "info" in second


async def test_sse_answers_400(node: ServerProcess) -> None:
    deep_connect = b'{"data":' + nested(DEEP_URL) + b"}"
    url = f"http://127.0.0.1:{node.port}/connection/uni_sse"
    timeout = aiohttp.ClientTimeout(total=STEP)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        query = urlencode({"cf_connect": deep_connect.decode()})
        async with http.get(f"{url}?{query}") as resp:
            assert resp.status == 400
            assert "deep" in await resp.text()
        async with http.post(url, data=b'{"data":' + nested(DEEP) + b"}") as resp:
            assert resp.status == 400
        query = urlencode({"cf_connect": deep_connect.decode(), "cf_channel": "c"})
        async with http.get(f"{url}?{query}", headers={"Last-Event-ID": "1:e"}) as resp:
            assert resp.status == 400


async def test_uni_websocket_answers_400_before_the_upgrade(node: ServerProcess) -> None:
    query = {"cf_connect": (b'{"data":' + nested(DEEP_URL) + b"}").decode()}
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(uni_ws_url(node, query))
    assert refused.value.response.status_code == 400
    assert b"deep" in refused.value.response.body
    token = node.token("fine", channels=["c"])
    async with websockets.connect(uni_ws_url(node, connect_query(token))) as ws:
        assert "connect" in json.loads(str(await ws.recv()))


async def test_uni_websocket_first_message_nested_too_deep_closes_3501(node: ServerProcess) -> None:
    async with websockets.connect(uni_ws_url(node, {})) as ws:
        await ws.send(b'{"data":' + nested(DEEP) + b"}")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == BAD_REQUEST
