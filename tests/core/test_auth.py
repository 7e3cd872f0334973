"""Connection and subscription tokens: strict JWT verification."""

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

from tidings.core.auth import (
    TokenExpired,
    TokenInvalid,
    TokenVerifier,
    load_key,
    ttl_of,
)
from tidings.errors import ConfigError, ReplyError

SECRET = "auth-secret-" + "0123456789" * 6  # 64+ bytes: long enough for HS512


def hs(claims: dict[str, Any], secret: str = SECRET, alg: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=alg)


def soon(seconds: int = 3600) -> int:
    return int(time.time()) + seconds


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[Any, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, public.decode()


@pytest.fixture(scope="module")
def ec_keys() -> tuple[Any, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, public.decode()


# --- connection tokens -----------------------------------------------------------


def test_connection_claims() -> None:
    verifier = TokenVerifier(SECRET)
    exp = soon()
    claims = verifier.connection(
        hs({"sub": "42", "exp": exp, "info": {"name": "ann"}, "channels": ["a", "b"]})
    )
    assert claims.user == "42"
    assert claims.expire_at == exp
    assert json.loads(claims.info) == {"name": "ann"}
    assert claims.channels == ("a", "b")


def test_minimal_token() -> None:
    claims = TokenVerifier(SECRET).connection(hs({"sub": "7"}))
    assert (claims.user, claims.expire_at, claims.info, claims.channels) == ("7", 0, b"", ())


def test_anonymous_token_has_empty_user() -> None:
    assert TokenVerifier(SECRET).connection(hs({})).user == ""


def test_expire_at_claim_wins_over_exp() -> None:
    exp, expire_at = soon(100), soon(50)
    claims = TokenVerifier(SECRET).connection(hs({"sub": "1", "exp": exp, "expire_at": expire_at}))
    assert claims.expire_at == expire_at


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_every_hmac_algorithm(alg: str) -> None:
    assert TokenVerifier(SECRET).connection(hs({"sub": "1"}, alg=alg)).user == "1"


def test_expired_token() -> None:
    with pytest.raises(TokenExpired):
        TokenVerifier(SECRET).connection(hs({"sub": "1", "exp": int(time.time()) - 10}))


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "a.b.c",
        hs({"sub": "1"}, secret="another-secret-0123456789-0123456789"),
        hs({"sub": 42}),
        hs({"sub": "1", "channels": "a"}),
        hs({"sub": "1", "channels": [1]}),
        hs({"sub": "1", "expire_at": "soon"}),
        jwt.encode({"sub": "1"}, None, algorithm="none"),  # type: ignore[arg-type]
    ],
    ids=[
        "empty",
        "garbage",
        "three-parts",
        "wrong-secret",
        "sub-not-str",
        "channels-not-list",
        "channel-not-str",
        "expire-at-not-number",
        "alg-none",
    ],
)
def test_invalid_tokens(token: str) -> None:
    with pytest.raises(TokenInvalid):
        TokenVerifier(SECRET).connection(token)


def test_tampered_payload_is_invalid() -> None:
    header, _, signature = hs({"sub": "1"}).split(".")
    forged = base64.urlsafe_b64encode(b'{"sub":"admin"}').rstrip(b"=").decode()
    with pytest.raises(TokenInvalid):
        TokenVerifier(SECRET).connection(f"{header}.{forged}.{signature}")


def test_no_key_configured_refuses_everything() -> None:
    verifier = TokenVerifier("")
    assert not verifier.enabled
    with pytest.raises(TokenInvalid):
        verifier.connection(hs({"sub": "1"}))


def test_audience_and_issuer() -> None:
    verifier = TokenVerifier(SECRET, audience="tidings", issuer="me")
    assert verifier.connection(hs({"sub": "1", "aud": "tidings", "iss": "me"})).user == "1"
    for claims in ({"sub": "1", "aud": "x", "iss": "me"}, {"sub": "1", "aud": "tidings"}):
        with pytest.raises(TokenInvalid):
            verifier.connection(hs(claims))


# --- asymmetric keys ----------------------------------------------------------------


def test_rsa_tokens(rsa_keys: tuple[Any, str]) -> None:
    private, public = rsa_keys
    verifier = TokenVerifier(rsa_public_key=public)
    assert verifier.enabled
    assert verifier.algorithms == ["RS256", "RS384", "RS512"]
    for alg in ("RS256", "RS512"):
        assert verifier.connection(jwt.encode({"sub": "r"}, private, algorithm=alg)).user == "r"


def test_hmac_token_signed_with_the_rsa_public_key_is_refused(rsa_keys: tuple[Any, str]) -> None:
    # The classic algorithm-confusion forgery: HS256 keyed with the public PEM.
    _, public = rsa_keys
    verifier = TokenVerifier(rsa_public_key=public)
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    payload = base64.urlsafe_b64encode(b'{"sub":"admin"}').rstrip(b"=")
    signing_input = header + b"." + payload
    sig = hmac.new(public.encode(), signing_input, hashlib.sha256).digest()
    forged = (signing_input + b"." + base64.urlsafe_b64encode(sig).rstrip(b"=")).decode()
    with pytest.raises(TokenInvalid, match="not accepted"):
        verifier.connection(forged)


def test_ecdsa_tokens(ec_keys: tuple[Any, str], rsa_keys: tuple[Any, str]) -> None:
    private, public = ec_keys
    verifier = TokenVerifier(SECRET, ecdsa_public_key=public)
    assert verifier.connection(jwt.encode({"sub": "e"}, private, algorithm="ES256")).user == "e"
    assert verifier.connection(hs({"sub": "h"})).user == "h"
    with pytest.raises(TokenInvalid):
        verifier.connection(jwt.encode({"sub": "r"}, rsa_keys[0], algorithm="RS256"))


def test_unusable_public_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        TokenVerifier(rsa_public_key="-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----")
    assert info.value.key == "token_rsa_public_key"


def test_load_key_from_value_or_file(tmp_path: Path, rsa_keys: tuple[Any, str]) -> None:
    _, public = rsa_keys
    assert load_key(public) == public
    assert load_key("") == ""
    path = tmp_path / "key.pem"
    path.write_text(public)
    assert load_key(str(path)) == public
    with pytest.raises(ValueError, match="cannot read key file"):
        load_key(str(tmp_path / "missing.pem"))


# --- subscription tokens -----------------------------------------------------------


def test_subscription_claims() -> None:
    exp = soon()
    claims = TokenVerifier(SECRET).subscription(
        hs({"sub": "u1", "channel": "$c", "exp": exp, "info": [1]}), "$c", "u1"
    )
    assert (claims.user, claims.channel, claims.expire_at) == ("u1", "$c", exp)
    assert claims.info == b"[1]"


@pytest.mark.parametrize(
    ("claims", "channel", "user", "code"),
    [
        ({"sub": "u1", "channel": "$other"}, "$c", "u1", 103),
        ({"sub": "u2", "channel": "$c"}, "$c", "u1", 103),
        ({"channel": "$c"}, "$c", "u1", 103),
        ({"sub": "u1", "channel": "$c", "exp": 1}, "$c", "u1", 109),
    ],
    ids=["other-channel", "other-user", "no-user", "expired"],
)
def test_subscription_token_errors(
    claims: dict[str, Any], channel: str, user: str, code: int
) -> None:
    with pytest.raises(ReplyError) as info:
        TokenVerifier(SECRET).subscription(hs(claims), channel, user)
    assert info.value.code == code


def test_forged_subscription_token_is_103() -> None:
    with pytest.raises(ReplyError) as info:
        TokenVerifier(SECRET).subscription(
            hs({"sub": "u1", "channel": "$c"}, secret="x" * 40), "$c", "u1"
        )
    assert info.value.code == 103


def test_anonymous_subscription_token() -> None:
    claims = TokenVerifier(SECRET).subscription(hs({"channel": "$c"}), "$c", "")
    assert claims.user == ""


# --- ttl ------------------------------------------------------------------------


def test_ttl_of() -> None:
    assert ttl_of(0) == 0
    assert ttl_of(int(time.time()) - 5) == 0
    assert 98 <= ttl_of(int(time.time()) + 100) <= 100
