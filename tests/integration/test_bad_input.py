"""Bad input on the client port, driven by a raw WebSocket client.

Every misbehaving client must get the exact close code (or error reply) of the
Centrifuge v2 protocol, while a well-behaved subscriber in the same node keeps
receiving publications and the server process stays up.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import jwt
import pytest
from websockets.asyncio.client import ClientConnection

from tests.conftest import ServerProcess
from tests.integration.support.api import api_call
from tests.integration.support.ws import (
    STEP,
    assert_open,
    connected_ws,
    expect_close,
    open_ws,
    recv_messages,
    recv_reply,
    send_connect,
    subscribe,
)

OPEN: dict[str, Any] = {
    "history_size": 100,
    "history_ttl": "5m",
    "presence": True,
    "allow_subscribe_for_client": True,
    "allow_subscribe_for_anonymous": True,
    "allow_publish_for_client": True,
    "allow_presence_for_subscriber": True,
}
WATCH = "news"


# --- raw client and the well-behaved witness -------------------------------------------


async def connected(server: ServerProcess, user: str = "bad") -> ClientConnection:
    """A raw socket of `user`, connected."""
    ws, _ = await connected_ws(server.ws_url, server.token(user))
    return ws


class Witness:
    """A well-behaved client subscribed to `WATCH` that must keep receiving."""

    def __init__(self, server: ServerProcess, ws: ClientConnection) -> None:
        self.server = server
        self.ws = ws
        self.seen: list[Any] = []

    async def check(self, label: str) -> None:
        """Publish `label` through the API; the witness must receive it."""
        await api_call(self.server, "publish", {"channel": WATCH, "data": {"label": label}})
        async with asyncio.timeout(STEP):
            while True:
                for message in await recv_messages(self.ws):
                    pub = message.get("push", {}).get("pub")
                    if pub is not None:
                        self.seen.append(pub["data"])
                        if pub["data"] == {"label": label}:
                            return


@asynccontextmanager
async def witnessed(server: ServerProcess) -> AsyncIterator[Witness]:
    """Around the bad behaviour: the witness receives before and after, the server lives."""
    ws = await connected(server, "witness")
    await subscribe(ws, WATCH)
    witness = Witness(server, ws)
    await witness.check("before")
    yield witness
    await witness.check("after")
    labels = [d["label"] for d in witness.seen if isinstance(d, dict) and "label" in d]
    assert labels[0] == "before" and labels[-1] == "after", witness.seen
    assert server.proc.poll() is None, server.log()
    # A new client can still connect and the witness is still answering commands.
    fresh = await connected(server, "fresh")
    await assert_open(fresh, 5)
    await fresh.close()
    await assert_open(ws, 99)
    await ws.close()


def open_server(server_factory: Callable[..., ServerProcess], **settings: Any) -> ServerProcess:
    return server_factory({"channel": OPEN, "client_ping_interval": 25, **settings})


# --- malformed frames ----------------------------------------------------------------


@pytest.mark.parametrize("after_connect", [False, True], ids=["before-connect", "after-connect"])
async def test_garbage_binary_frame_closes_3501(server: ServerProcess, after_connect: bool) -> None:
    async with witnessed(server):
        ws = await connected(server) if after_connect else await open_ws(server.ws_url)
        await ws.send(b"\x00\xff\xfe\x81garbage\x00\x9c\x13")
        assert await expect_close(ws) == 3501


@pytest.mark.parametrize(
    "text",
    ['{"id":2,"subscribe":', "not json at all", '{"id":2}\n{"id":3,', "[1,2,3]", '"str"'],
    ids=["truncated", "words", "second-line-broken", "array", "string"],
)
async def test_invalid_json_text_closes_3501(server: ServerProcess, text: str) -> None:
    async with witnessed(server):
        ws = await connected(server)
        await ws.send(text)
        assert await expect_close(ws) == 3501


async def test_empty_text_frame_closes_3501(server: ServerProcess) -> None:
    async with witnessed(server):
        ws = await connected(server)
        await ws.send("")
        assert await expect_close(ws) == 3501


@pytest.mark.parametrize(
    "command",
    [
        {"id": 1, "subscribe": {"channel": WATCH}},
        {"id": 1, "ping": {}},
        {"id": 1, "publish": {"channel": WATCH, "data": {"x": 1}}},
    ],
    ids=["subscribe", "ping", "publish"],
)
async def test_command_before_connect_closes_3501(
    server: ServerProcess, command: dict[str, Any]
) -> None:
    async with witnessed(server) as witness:
        ws = await open_ws(server.ws_url)
        await ws.send(json.dumps(command))
        assert await expect_close(ws) == 3501
    # The rejected publish must not have reached the channel.
    assert {"x": 1} not in witness.seen


async def test_unknown_method_gets_error_104_and_stays_open(server: ServerProcess) -> None:
    async with witnessed(server):
        ws = await connected(server)
        await ws.send(json.dumps({"id": 2, "foo": {}}))
        reply = await recv_reply(ws, 2)
        assert reply["error"]["code"] == 104, reply
        assert set(reply) == {"id", "error"}, reply
        # Still open and usable: it can subscribe and receive.
        await assert_open(ws, 3)
        await ws.send(json.dumps({"id": 4, "subscribe": {"channel": "other"}}))
        assert "error" not in await recv_reply(ws, 4)
        await api_call(server, "publish", {"channel": "other", "data": {"ok": True}})
        async with asyncio.timeout(STEP):
            pushes: list[dict[str, Any]] = []
            while not pushes:
                pushes = [m for m in await recv_messages(ws) if "push" in m]
        assert pushes[0]["push"]["pub"]["data"] == {"ok": True}
        await ws.close()


async def test_command_with_two_requests_closes_3501(server: ServerProcess) -> None:
    async with witnessed(server) as witness:
        ws = await connected(server)
        two = {
            "id": 2,
            "subscribe": {"channel": WATCH},
            "publish": {"channel": WATCH, "data": {"two": 1}},
        }
        await ws.send(json.dumps(two))
        assert await expect_close(ws) == 3501
    assert {"two": 1} not in witness.seen


async def test_request_without_id_closes_3501(server: ServerProcess) -> None:
    async with witnessed(server):
        ws = await connected(server)
        await ws.send(json.dumps({"subscribe": {"channel": WATCH}}))
        assert await expect_close(ws) == 3501


async def test_unrequested_pong_closes_3501(server: ServerProcess) -> None:
    async with witnessed(server):
        ws = await connected(server)
        await ws.send("{}")
        assert await expect_close(ws) == 3501


async def test_second_connect_closes_3501(server: ServerProcess) -> None:
    async with witnessed(server):
        ws = await connected(server)
        await ws.send(json.dumps({"id": 2, "connect": {"token": server.token("bad")}}))
        assert await expect_close(ws) == 3501


# --- size limit ------------------------------------------------------------------------


async def test_oversized_frame_closes_1009(server_factory: Callable[..., ServerProcess]) -> None:
    server = open_server(server_factory, client_max_message_size=2048)
    async with witnessed(server) as witness:
        ws = await connected(server)
        # Just under the limit is accepted.
        small = {"id": 2, "publish": {"channel": WATCH, "data": {"pad": "s" * 1800}}}
        assert len(json.dumps(small)) < 2048
        await ws.send(json.dumps(small))
        assert "error" not in await recv_reply(ws, 2)
        await witness.check("after-small")
        big = {"id": 3, "publish": {"channel": WATCH, "data": {"pad": "b" * 8000}}}
        await ws.send(json.dumps(big))
        assert await expect_close(ws) == 1009
    assert {"pad": "b" * 8000} not in witness.seen
    assert {"pad": "s" * 1800} in witness.seen


async def test_oversized_fragmented_message_closes_1009(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = open_server(server_factory, client_max_message_size=2048)
    async with witnessed(server) as witness:
        ws = await connected(server)
        text = json.dumps({"id": 2, "publish": {"channel": WATCH, "data": {"pad": "f" * 8000}}})
        # Each fragment is under the limit; the message is not.
        await ws.send([text[i : i + 1000] for i in range(0, len(text), 1000)])
        assert await expect_close(ws) == 1009
    assert {"pad": "f" * 8000} not in witness.seen


# --- several commands in one frame -----------------------------------------------------


async def test_several_commands_in_one_frame_all_replied(server: ServerProcess) -> None:
    async with witnessed(server) as witness:
        ws = await open_ws(server.ws_url)
        commands = [
            {"id": 1, "connect": {"token": server.token("multi")}},
            {"id": 2, "subscribe": {"channel": WATCH}},
            {"id": 3, "ping": {}},
            {"id": 4, "publish": {"channel": WATCH, "data": {"multi": 1}}},
            {"id": 5, "presence_stats": {"channel": WATCH}},
            {"id": 6, "foo": {}},
            {"id": 7, "ping": {}},
        ]
        await ws.send("\n".join(json.dumps(c) for c in commands))
        replies: list[dict[str, Any]] = []
        frames = 0
        async with asyncio.timeout(STEP):
            while len([r for r in replies if "id" in r]) < len(commands):
                replies += await recv_messages(ws)
                frames += 1
        with_id = [r for r in replies if "id" in r]
        assert [r["id"] for r in with_id] == [1, 2, 3, 4, 5, 6, 7]
        assert "connect" in with_id[0] and "subscribe" in with_id[1]
        assert "ping" in with_id[2] and "publish" in with_id[3]
        assert with_id[4]["presence_stats"]["num_clients"] == 2  # witness + this one
        assert with_id[5]["error"]["code"] == 104
        assert "ping" in with_id[6]
        assert all("error" not in r for i, r in enumerate(with_id) if i != 5)
        # The client's own publication reached itself (it subscribed first) and the witness.
        pubs = [r["push"]["pub"]["data"] for r in replies if "push" in r]
        if not pubs:
            async with asyncio.timeout(STEP):
                while not pubs:
                    pubs = [m["push"]["pub"]["data"] for m in await recv_messages(ws)]
        assert pubs == [{"multi": 1}]
        await assert_open(ws, 8)
        await ws.close()
    assert {"multi": 1} in witness.seen


# --- tokens ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_token",
    [
        jwt.encode({"sub": "u", "exp": int(time.time()) + 3600}, "another-secret-" * 3),
        "not-a-jwt",
        jwt.encode({"sub": "u"}, None, algorithm="none"),
    ],
    ids=["wrong-secret", "not-a-jwt", "alg-none"],
)
async def test_wrong_token_closes_3500(server: ServerProcess, bad_token: str) -> None:
    async with witnessed(server):
        ws = await open_ws(server.ws_url)
        await ws.send(json.dumps({"id": 1, "connect": {"token": bad_token}}))
        assert await expect_close(ws) == 3500


async def test_expired_token_gets_error_109(server: ServerProcess) -> None:
    async with witnessed(server):
        ws = await open_ws(server.ws_url)
        expired = jwt.encode({"sub": "u", "exp": int(time.time()) - 60}, server.secret)
        reply = await send_connect(ws, expired)
        assert reply["id"] == 1
        assert reply["error"]["code"] == 109, reply
        assert "connect" not in reply
        # The client may retry with a fresh token on the same socket.
        await ws.send(json.dumps({"id": 2, "connect": {"token": server.token("u")}}))
        retry = await recv_reply(ws, 2)
        assert "error" not in retry, retry
        assert retry["connect"]["client"]
        await ws.close()


async def test_no_token_without_anonymous_closes_3500(server: ServerProcess) -> None:
    async with witnessed(server):
        ws = await open_ws(server.ws_url)
        await ws.send(json.dumps({"id": 1, "connect": {}}))
        assert await expect_close(ws) == 3500


async def test_token_without_user_and_no_anonymous_closes_3500(server: ServerProcess) -> None:
    async with witnessed(server):
        ws = await open_ws(server.ws_url)
        await ws.send(json.dumps({"id": 1, "connect": {"token": server.token("")}}))
        assert await expect_close(ws) == 3500


async def test_no_token_with_anonymous_connects(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = open_server(server_factory, allow_anonymous=True)
    async with witnessed(server):
        ws = await open_ws(server.ws_url)
        reply = await send_connect(ws, None)
        assert "error" not in reply, reply
        result = reply["connect"]
        assert result["client"]
        assert result.get("expires", False) is False
        await ws.send(json.dumps({"id": 2, "subscribe": {"channel": WATCH}}))
        assert "error" not in await recv_reply(ws, 2)
        await ws.send(json.dumps({"id": 3, "presence": {"channel": WATCH}}))
        presence = (await recv_reply(ws, 3))["presence"]["presence"]
        mine = presence[result["client"]]
        assert mine.get("user", "") == ""
        await ws.close()
