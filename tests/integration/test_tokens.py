"""Connection and subscription tokens against a real `tidings serve` process.

Driven by a raw WebSocket client, so the exact close codes (3500 invalid
token, 3005 expired, 3006 subscription expired) and error replies (103, 109)
are what is asserted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.conftest import OPEN_CHANNEL, SECRET, ServerProcess
from tests.integration.support.api import api_call
from tests.integration.support.ws import (
    assert_open,
    closing,
    connected_ws,
    expect_close,
    raw_connect,
    send_command,
    stays_open,
)

INVALID_TOKEN = 3500
EXPIRED = 3005
SUBSCRIPTION_EXPIRED = 3006


def _pem_pair(private: Any) -> tuple[str, str]:
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[str, str]:
    return _pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def ec_keys() -> tuple[str, str]:
    return _pem_pair(ec.generate_private_key(ec.SECP256R1()))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged_hs256(payload: dict[str, Any], key: str) -> str:
    """An HS256 token signed with `key` (PyJWT refuses PEM keys as HMAC secrets)."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(payload).encode())
    signature = hmac.new(key.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(signature)}"


def alg_none(payload: dict[str, Any]) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(payload).encode())}."


def claims(user: str = "42", ttl: float = 3600, **extra: Any) -> dict[str, Any]:
    return {"sub": user, "exp": int(time.time() + ttl), **extra}


async def assert_accepted(server: ServerProcess, token: str, user: str = "42") -> None:
    ws, result = await connected_ws(server.ws_url, token)
    async with closing(ws):
        assert f"#{user}" in result.get("subs", {}), result  # the user's personal channel
        await assert_open(ws, 2)


async def assert_refused(
    server: ServerProcess, token: str | None, code: int = INVALID_TOKEN
) -> None:
    ws, reply = await raw_connect(server.ws_url, token)
    async with closing(ws):
        assert "connect" not in reply, reply
        assert await expect_close(ws) == code


# --- accepted keys -------------------------------------------------------------------------


async def test_hmac_token_connects(server: ServerProcess) -> None:
    ws, result = await connected_ws(server.ws_url, server.token("42", ttl=600))
    async with closing(ws):
        assert result["expires"] is True
        assert 590 <= result["ttl"] <= 600
        assert "#42" in result["subs"]


@pytest.mark.parametrize("form", ["file", "inline"])
async def test_rsa_token_connects(
    server_factory: Any, tmp_path: Path, rsa_keys: tuple[str, str], form: str
) -> None:
    private_pem, public_pem = rsa_keys
    if form == "file":
        key_file = tmp_path / "rsa.pub.pem"
        key_file.write_text(public_pem)
        server = server_factory({"token_rsa_public_key": str(key_file)})
    else:
        # A multi-line PEM value given inline, on the command line.
        server = server_factory(args=["--token-rsa-public-key", public_pem])
    for alg in ("RS256", "RS512"):
        await assert_accepted(server, jwt.encode(claims(), private_pem, algorithm=alg))
    # The HMAC secret is still accepted next to the RSA key.
    await assert_accepted(server, server.token("42"))
    # A token signed by another RSA key is not.
    other_private, _ = _pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    await assert_refused(server, jwt.encode(claims(), other_private, algorithm="RS256"))


async def test_ecdsa_token_connects(
    server_factory: Any, tmp_path: Path, ec_keys: tuple[str, str]
) -> None:
    private_pem, public_pem = ec_keys
    key_file = tmp_path / "ec.pub.pem"
    key_file.write_text(public_pem)
    server = server_factory({"token_ecdsa_public_key": str(key_file)})
    await assert_accepted(server, jwt.encode(claims(), private_pem, algorithm="ES256"))
    other_private, _ = _pem_pair(ec.generate_private_key(ec.SECP256R1()))
    await assert_refused(server, jwt.encode(claims(), other_private, algorithm="ES256"))


# --- refused tokens: close 3500 -------------------------------------------------------------


async def test_alg_none_is_refused(server: ServerProcess) -> None:
    await assert_refused(server, alg_none(claims()))


async def test_wrong_signature_is_refused(server: ServerProcess) -> None:
    await assert_refused(server, jwt.encode(claims(), SECRET + "-not", algorithm="HS256"))
    await assert_refused(server, "not.a.jwt")


@pytest.mark.parametrize("with_hmac", [False, True])
async def test_hs256_signed_with_rsa_public_key_is_refused(
    server_factory: Any, tmp_path: Path, rsa_keys: tuple[str, str], with_hmac: bool
) -> None:
    """Algorithm confusion: the public key PEM used as an HMAC secret must not verify."""
    private_pem, public_pem = rsa_keys
    key_file = tmp_path / "rsa.pub.pem"
    key_file.write_text(public_pem)
    settings: dict[str, Any] = {"token_rsa_public_key": str(key_file)}
    if not with_hmac:
        settings["token_hmac_secret"] = ""  # RSA only: no HS* algorithm at all
    server = server_factory(settings)
    await assert_refused(server, forged_hs256(claims(), public_pem))
    await assert_refused(server, forged_hs256(claims(), public_pem.strip()))
    # The genuine RSA token on the same server connects.
    await assert_accepted(server, jwt.encode(claims(), private_pem, algorithm="RS256"))
    if with_hmac:
        await assert_accepted(server, server.token("42"))
    else:
        # RSA only: no HMAC secret is made up (and printed) for this run, so HS256 is refused.
        await assert_refused(server, server.token("42"))
        assert "token HMAC secret" not in server.log()


async def test_audience_and_issuer_are_required(server_factory: Any) -> None:
    server = server_factory({"token_audience": "tidings-test", "token_issuer": "issuer-a"})
    good = {"aud": "tidings-test", "iss": "issuer-a"}
    await assert_accepted(server, jwt.encode(claims(**good), SECRET, algorithm="HS256"))
    await assert_accepted(
        server,
        jwt.encode(
            claims(aud=["other", "tidings-test"], iss="issuer-a"), SECRET, algorithm="HS256"
        ),
    )
    refused = [
        {"aud": "other", "iss": "issuer-a"},  # wrong audience
        {"aud": "tidings-test", "iss": "issuer-b"},  # wrong issuer
        {"iss": "issuer-a"},  # no aud at all
        {"aud": "tidings-test"},  # no iss at all
    ]
    for extra in refused:
        await assert_refused(server, jwt.encode(claims(**extra), SECRET, algorithm="HS256"))


# --- expiry ---------------------------------------------------------------------------------


async def test_expired_token_at_connect_is_error_109(server: ServerProcess) -> None:
    ws, reply = await raw_connect(server.ws_url, server.token("42", ttl=-30))
    async with closing(ws):
        assert reply.get("error", {}).get("code") == 109, reply
        assert "connect" not in reply
        # A 109 is a reply error, not a disconnect: the client may connect again with a new token.
        again = await send_command(ws, 2, connect={"token": server.token("42")})
        assert again["connect"]["client"], again


async def test_connection_not_refreshed_is_closed_3005(server: ServerProcess) -> None:
    started = time.monotonic()
    ws, result = await connected_ws(server.ws_url, server.token("42", ttl=2))
    async with closing(ws):
        assert result["expires"] is True
        assert result["ttl"] <= 2
        assert await expect_close(ws, within=6) == EXPIRED
        assert time.monotonic() - started >= 0.9


async def test_refreshed_connection_stays(server: ServerProcess) -> None:
    ws, _ = await connected_ws(server.ws_url, server.token("42", ttl=2))
    async with closing(ws):
        reply = await send_command(ws, 2, refresh={"token": server.token("42", ttl=600)})
        assert reply["refresh"]["expires"] is True, reply
        assert reply["refresh"]["ttl"] > 500
        await stays_open(ws, 3.5)
        await assert_open(ws, 3)


async def test_refresh_with_another_users_token_is_3500(server: ServerProcess) -> None:
    ws, _ = await connected_ws(server.ws_url, server.token("42", ttl=600))
    async with closing(ws):
        await ws.send(json.dumps({"id": 2, "refresh": {"token": server.token("43")}}))
        assert await expect_close(ws) == INVALID_TOKEN


# --- anonymous --------------------------------------------------------------------------------


async def test_empty_sub_refused_without_allow_anonymous(server: ServerProcess) -> None:
    await assert_refused(server, server.token(""))
    await assert_refused(server, None)


async def test_empty_sub_is_anonymous_with_allow_anonymous(server_factory: Any) -> None:
    channel = {**OPEN_CHANNEL, "allow_subscribe_for_anonymous": False}
    server = server_factory({"allow_anonymous": True, "channel": channel})
    ws, result = await connected_ws(server.ws_url, server.token(""))
    async with closing(ws):
        assert "subs" not in result or not result["subs"], result  # no personal channel
        # Anonymous: refused where only authenticated clients may subscribe.
        reply = await send_command(ws, 2, subscribe={"channel": "news"})
        assert reply.get("error", {}).get("code") == 103, reply
    ws, _ = await connected_ws(server.ws_url, server.token("42"))
    async with closing(ws):
        reply = await send_command(ws, 2, subscribe={"channel": "news"})
        assert "subscribe" in reply, reply


# --- subscription tokens -----------------------------------------------------------------


async def test_private_channel_needs_subscription_token(server: ServerProcess) -> None:
    ws, _ = await connected_ws(server.ws_url, server.token("42"))
    async with closing(ws):
        reply = await send_command(ws, 2, subscribe={"channel": "$secret"})
        assert reply.get("error", {}).get("code") == 103, reply
        wrong_channel = server.token("42", channel="$other")
        reply = await send_command(ws, 3, subscribe={"channel": "$secret", "token": wrong_channel})
        assert reply.get("error", {}).get("code") == 103, reply
        other_user = server.token("43", channel="$secret")
        reply = await send_command(ws, 4, subscribe={"channel": "$secret", "token": other_user})
        assert reply.get("error", {}).get("code") == 103, reply
        forged = jwt.encode(
            claims(channel="$secret"), "wrong-secret-0123456789-0123456789-0123", algorithm="HS256"
        )
        reply = await send_command(ws, 5, subscribe={"channel": "$secret", "token": forged})
        assert reply.get("error", {}).get("code") == 103, reply
        expired = server.token("42", ttl=-30, channel="$secret")
        reply = await send_command(ws, 6, subscribe={"channel": "$secret", "token": expired})
        assert reply.get("error", {}).get("code") == 109, reply
        good = server.token("42", channel="$secret")
        reply = await send_command(ws, 7, subscribe={"channel": "$secret", "token": good})
        assert "subscribe" in reply, reply
        assert reply["subscribe"]["expires"] is True
        await assert_open(ws, 8)


async def test_subscription_not_refreshed_is_closed_3006(server: ServerProcess) -> None:
    ws, _ = await connected_ws(server.ws_url, server.token("42"))
    async with closing(ws):
        token = server.token("42", ttl=2, channel="$secret")
        reply = await send_command(ws, 2, subscribe={"channel": "$secret", "token": token})
        assert "subscribe" in reply, reply
        assert await expect_close(ws, within=6) == SUBSCRIPTION_EXPIRED


async def test_subscription_refreshed_stays(server: ServerProcess) -> None:
    ws, _ = await connected_ws(server.ws_url, server.token("42"))
    async with closing(ws):
        token = server.token("42", ttl=2, channel="$secret")
        reply = await send_command(ws, 2, subscribe={"channel": "$secret", "token": token})
        assert "subscribe" in reply, reply
        fresh = server.token("42", ttl=600, channel="$secret")
        reply = await send_command(ws, 3, sub_refresh={"channel": "$secret", "token": fresh})
        assert reply["sub_refresh"]["expires"] is True, reply
        await stays_open(ws, 3.5)
        await assert_open(ws, 4)


async def test_user_limited_channel(server_factory: Any) -> None:
    channel = {**OPEN_CHANNEL, "allow_user_limited_channels": True}
    server = server_factory({"channel": channel})
    for user in ("42", "43"):
        ws, _ = await connected_ws(server.ws_url, server.token(user))
        async with closing(ws):
            reply = await send_command(ws, 2, subscribe={"channel": "dialog#42,43"})
            assert "subscribe" in reply, (user, reply)
    ws, _ = await connected_ws(server.ws_url, server.token("44"))
    async with closing(ws):
        reply = await send_command(ws, 2, subscribe={"channel": "dialog#42,43"})
        assert reply.get("error", {}).get("code") == 103, reply
        # Nor may 44 subscribe to someone else's personal channel.
        reply = await send_command(ws, 3, subscribe={"channel": "#42"})
        assert reply.get("error", {}).get("code") == 103, reply


async def test_user_limited_channel_off_by_default(server: ServerProcess) -> None:
    ws, _ = await connected_ws(server.ws_url, server.token("42"))
    async with closing(ws):
        reply = await send_command(ws, 2, subscribe={"channel": "dialog#42,43"})
        assert reply.get("error", {}).get("code") == 103, reply


async def test_token_channels_in_unknown_namespace_leave_no_ghost(server: ServerProcess) -> None:
    """A connect whose server-side channels cannot be subscribed closes; nothing stays behind."""
    await assert_refused(server, server.token("42", channels=["nope:x"]))
    status = await api_call(server, "user_status", {"users": ["42"]})
    assert status["statuses"][0]["connections"] == 0, status
    assert (await api_call(server, "info", {}))["nodes"][0]["num_clients"] == 0
