"""Tokens used for what they are not, or with claims of the wrong type.

A subscription token (it has `channel`) is not a connection token: refused
with 3500, as Centrifugo does. Claims of the wrong type or range are an
invalid token (3500 on connect, 103 on subscribe), never error 100 with a
traceback; a far-future expiry still gives a `ttl` that fits the protocol's
uint32.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable

import pytest

from tests.conftest import OPEN_CHANNEL, ServerProcess
from tests.integration.support.ws import (
    closing,
    connected_ws,
    expect_close,
    raw_connect,
    send_command,
)

INVALID_TOKEN = 3500
UINT32_MAX = 0xFFFFFFFF


@pytest.fixture
def node(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory({"channel": OPEN_CHANNEL})


def signed(server: ServerProcess, payload: bytes) -> str:
    """An HS256 token over `payload` exactly as given (any JSON, even what PyJWT won't write)."""

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    head = b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64(payload)
    signature = hmac.new(server.secret.encode(), head, hashlib.sha256).digest()
    return (head + b"." + b64(signature)).decode()


async def test_a_subscription_token_cannot_connect(node: ServerProcess) -> None:
    token = node.token("alice", channel="$room")
    ws, reply = await raw_connect(node.ws_url, token)
    async with closing(ws):
        assert "connect" not in reply, "connected as alice with her subscription token"
        assert await expect_close(ws) == INVALID_TOKEN
    assert "Traceback" not in node.log()


@pytest.mark.parametrize(
    "claims",
    [
        b'"expire_at":"soon"',
        b'"expire_at":1e999',
        b'"expire_at":true',
        b'"expire_at":-5',
        b'"expire_at":99999999999999999999999',
        b'"exp":"tomorrow"',
        b'"iat":[1]',
        b'"nbf":{"a":1}',
        b'"sub":"\\ud800"',
        b'"info":"\\udfff"',
        b'"info":' + b"[" * 300 + b"]" * 300,
        b'"channels":["\\ud800"]',
    ],
)
async def test_connection_token_claims_of_the_wrong_type_close_3500(
    node: ServerProcess, claims: bytes
) -> None:
    payload = b'{"sub":"bob",' + claims + b"}"
    if claims.startswith(b'"sub"'):
        payload = b"{" + claims + b"}"
    ws, reply = await raw_connect(node.ws_url, signed(node, payload))
    async with closing(ws):
        assert "connect" not in reply, reply
        assert reply.get("error") is None, f"error reply instead of 3500: {reply}"
        assert await expect_close(ws) == INVALID_TOKEN
    assert "Traceback" not in node.log()


@pytest.mark.parametrize(
    "claims",
    [
        b'"expire_at":"soon"',
        b'"expire_at":1e999',
        b'"expire_at":true',
        b'"exp":"later"',
        b'"info":"\\ud800"',
        b'"info":' + b"[" * 300 + b"]" * 300,
    ],
)
async def test_subscription_token_claims_of_the_wrong_type_are_103(
    node: ServerProcess, claims: bytes
) -> None:
    ws, _ = await connected_ws(node.ws_url, node.token("carol"))
    async with closing(ws):
        token = signed(node, b'{"sub":"carol","channel":"$room",' + claims + b"}")
        reply = await send_command(ws, 2, subscribe={"channel": "$room", "token": token})
        assert reply.get("error", {}).get("code") == 103, reply
        # The connection is fine and a good token still works.
        good = node.token("carol", channel="$room")
        reply = await send_command(ws, 3, subscribe={"channel": "$room", "token": good})
        assert "subscribe" in reply, reply
    assert "Traceback" not in node.log()


@pytest.mark.parametrize("exp", [32503680000, 2**62])  # the year 3000, and far beyond
async def test_a_far_future_exp_gives_a_uint32_ttl(node: ServerProcess, exp: int) -> None:
    token = signed(node, json.dumps({"sub": "dave", "exp": exp}).encode())
    ws, connect = await connected_ws(node.ws_url, token)
    async with closing(ws):
        assert connect["expires"] is True
        assert 0 < connect["ttl"] <= UINT32_MAX
        sub_token = signed(
            node, json.dumps({"sub": "dave", "channel": "$room", "exp": exp}).encode()
        )
        reply = await send_command(ws, 2, subscribe={"channel": "$room", "token": sub_token})
        assert 0 < reply["subscribe"]["ttl"] <= UINT32_MAX, reply
        reply = await send_command(ws, 3, refresh={"token": token})
        assert 0 < reply["refresh"]["ttl"] <= UINT32_MAX, reply
    assert "Traceback" not in node.log()


def test_signed_helper_makes_tokens_the_server_accepts() -> None:
    """The hand-made tokens above are refused for their claims, not their signature."""
    import jwt

    class Fake:
        secret = "k" * 32

    token = signed(Fake(), b'{"sub":"x","exp":%d}' % (time.time() + 60))  # type: ignore[arg-type]
    assert jwt.decode(token, "k" * 32, algorithms=["HS256"])["sub"] == "x"
