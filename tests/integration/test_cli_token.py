"""`python -m tidings token`: the printed JWT has the right claims and a real
server configured with the same key accepts it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.conftest import SECRET, ServerProcess
from tests.integration.support.ws import (
    assert_open,
    closing,
    connected_ws,
    expect_close,
    raw_connect,
    send_command,
)

CLI_SECRET = "cli-secret-0123456789-0123456789-0123456789"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    return subprocess.run(
        [sys.executable, "-m", "tidings", "token", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**clean, **(env or {})},
        check=False,
    )


def token_of(*args: str, env: dict[str, str] | None = None) -> str:
    done = run_cli(*args, env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout  # just the token, for $(tidings token ...)
    return lines[0]


def decode(token: str, key: Any = CLI_SECRET, alg: str = "HS256") -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, key, algorithms=[alg], options={"verify_aud": False})
    return claims


def _write_private_key(path: Path, private: Any) -> str:
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


# --- the printed claims ----------------------------------------------------------------------


def test_connection_token_claims() -> None:
    before = int(time.time())
    token = token_of("--secret", CLI_SECRET, "--user", "42", "--ttl", "60")
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = decode(token)
    assert claims["sub"] == "42"
    assert before + 60 <= claims["exp"] <= int(time.time()) + 60
    assert "channel" not in claims
    with pytest.raises(jwt.InvalidSignatureError):
        decode(token, key=CLI_SECRET + "x")


def test_subscription_token_claims() -> None:
    token = token_of("--secret", CLI_SECRET, "--user", "42", "--ttl", "60", "--channel", "$x")
    claims = decode(token)
    assert claims["sub"] == "42"
    assert claims["channel"] == "$x"
    assert claims["exp"] > time.time()


def test_other_claims() -> None:
    token = token_of(
        "--secret",
        CLI_SECRET,
        "--user",
        "7",
        "--ttl",
        "0",
        "--channels",
        "news,alerts",
        "--info",
        '{"name": "Seven"}',
        "--audience",
        "aud-1",
        "--issuer",
        "iss-1",
    )
    claims = decode(token)
    assert "exp" not in claims  # --ttl 0: never expires
    assert claims["channels"] == ["news", "alerts"]
    assert claims["info"] == {"name": "Seven"}
    assert claims["aud"] == "aud-1"
    assert claims["iss"] == "iss-1"


def test_secret_from_config_file(tmp_path: Path) -> None:
    config = tmp_path / "tidings.toml"
    config.write_text(f'token_hmac_secret = "{CLI_SECRET}"\n')
    claims = decode(token_of("--config", str(config), "--user", "9"))
    assert claims["sub"] == "9"


def test_secret_from_environment() -> None:
    token = token_of("--user", "9", env={"TIDINGS_TOKEN_HMAC_SECRET": CLI_SECRET})
    assert decode(token)["sub"] == "9"


def test_without_a_secret_exits_2() -> None:
    done = run_cli("--user", "42")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "token_hmac_secret" in done.stderr


def test_bad_info_exits_2() -> None:
    done = run_cli("--secret", CLI_SECRET, "--user", "42", "--info", "{not json")
    assert done.returncode == 2
    assert "--info" in done.stderr


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_private_key_tokens(tmp_path: Path, kind: str) -> None:
    key_file = tmp_path / f"{kind}.pem"
    if kind == "rsa":
        public = _write_private_key(key_file, rsa.generate_private_key(65537, 2048))
        alg = "RS256"
    else:
        public = _write_private_key(key_file, ec.generate_private_key(ec.SECP256R1()))
        alg = "ES256"
    token = token_of("--private-key", str(key_file), "--user", "42")
    assert jwt.get_unverified_header(token)["alg"] == alg
    assert decode(token, key=public, alg=alg)["sub"] == "42"


# --- the printed token against a real server ----------------------------------------------------


async def test_printed_token_connects(server: ServerProcess) -> None:
    token = await asyncio.to_thread(token_of, "--secret", SECRET, "--user", "42", "--ttl", "60")
    ws, result = await connected_ws(server.ws_url, token)
    async with closing(ws):
        assert "#42" in result["subs"]
        assert result["expires"] is True
        assert 50 <= result["ttl"] <= 60
        await assert_open(ws, 2)
        # A subscription token from the CLI opens a private channel.
        sub_token = await asyncio.to_thread(
            token_of, "--secret", SECRET, "--user", "42", "--channel", "$x"
        )
        reply = await send_command(ws, 3, subscribe={"channel": "$x", "token": sub_token})
        assert "subscribe" in reply, reply


async def test_token_with_another_secret_is_refused(server: ServerProcess) -> None:
    token = await asyncio.to_thread(token_of, "--secret", CLI_SECRET, "--user", "42")
    ws, reply = await raw_connect(server.ws_url, token)
    async with closing(ws):
        assert "connect" not in reply
        assert await expect_close(ws) == 3500


async def test_private_key_token_connects(server_factory: Any, tmp_path: Path) -> None:
    key_file = tmp_path / "ec.pem"
    public = _write_private_key(key_file, ec.generate_private_key(ec.SECP256R1()))
    public_file = tmp_path / "ec.pub.pem"
    public_file.write_text(public)
    server = server_factory({"token_ecdsa_public_key": str(public_file)})
    token = await asyncio.to_thread(
        token_of, "--private-key", str(key_file), "--alg", "ES256", "--user", "42"
    )
    ws, result = await connected_ws(server.ws_url, token)
    async with closing(ws):
        assert "#42" in result["subs"]


def test_unusable_private_key_exits_2(tmp_path: Path) -> None:
    key_file = tmp_path / "bad.pem"
    key_file.write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    done = run_cli("--private-key", str(key_file), "--user", "42")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "--private-key" in done.stderr
