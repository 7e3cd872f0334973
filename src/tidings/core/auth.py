"""Connection and subscription tokens (JWT), verified strictly.

Only the algorithms of the configured keys are accepted: HS256/384/512 with
an HMAC secret, RS256/384/512 with an RSA public key, ES256/384/512 with an
ECDSA public key. `alg: none` and every other algorithm are refused before
any signature check.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import msgspec
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tidings.errors import ConfigError, ReplyError
from tidings.protocol.centrifuge.codes import ErrorCode
from tidings.protocol.centrifuge.payload import InvalidPayload, compact_json

HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
RSA_ALGORITHMS = ("RS256", "RS384", "RS512")
ECDSA_ALGORITHMS = ("ES256", "ES384", "ES512")


def load_key(value: str) -> str:
    """A PEM key given inline or as the path of a PEM file."""
    if not value or value.lstrip().startswith("-----BEGIN"):
        return value
    path = Path(value)
    try:
        return path.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read key file {value!r}: {exc.strerror}") from None


class TokenInvalid(Exception):
    """The token is malformed, forged, or not for us (connection: disconnect 3500)."""


class TokenExpired(Exception):
    """The token was valid but has expired (error 109)."""


@dataclass(frozen=True, slots=True)
class ConnectionClaims:
    user: str
    expire_at: int = 0
    info: bytes = b""
    channels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SubscriptionClaims:
    user: str
    channel: str
    expire_at: int = 0
    info: bytes = b""


class TokenVerifier:
    """Verifies JWTs against the configured keys, each with its own algorithms only.

    The algorithm named in a token's header picks the key: HS* the HMAC secret,
    RS* the RSA public key, ES* the ECDSA public key. A token naming an
    algorithm whose key is not configured (including `none`) is refused, so an
    HMAC token "signed" with the RSA public key never meets that key.
    """

    def __init__(
        self,
        hmac_secret: str = "",
        *,
        rsa_public_key: str = "",
        ecdsa_public_key: str = "",
        audience: str = "",
        issuer: str = "",
    ) -> None:
        self._keys: dict[str, Any] = {}
        if hmac_secret:
            self._keys.update(dict.fromkeys(HMAC_ALGORITHMS, hmac_secret))
        if rsa_public_key:
            key = _public_key(rsa_public_key, RSAAlgorithm, "token_rsa_public_key")
            self._keys.update(dict.fromkeys(RSA_ALGORITHMS, key))
        if ecdsa_public_key:
            key = _public_key(ecdsa_public_key, ECAlgorithm, "token_ecdsa_public_key")
            self._keys.update(dict.fromkeys(ECDSA_ALGORITHMS, key))
        self._audience = audience or None
        self._issuer = issuer or None

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    @property
    def algorithms(self) -> list[str]:
        return sorted(self._keys)

    def _decode(self, token: str) -> dict[str, Any]:
        if not self._keys:
            raise TokenInvalid("no token key configured")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"malformed token: {exc}") from None
        alg = header.get("alg")
        key = self._keys.get(alg) if isinstance(alg, str) else None
        if key is None:
            raise TokenInvalid(f"algorithm {alg!r} not accepted")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[str(alg)],
                audience=self._audience,
                issuer=self._issuer,
                options={"verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise TokenExpired("token expired") from None
        except jwt.PyJWTError as exc:
            raise TokenInvalid(str(exc)) from None
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            # Whatever a hostile payload makes the JSON decoder or a claim check raise.
            raise TokenInvalid(f"malformed token: {type(exc).__name__}") from None
        return claims

    def connection(self, token: str) -> ConnectionClaims:
        claims = self._decode(token)
        if "channel" in claims:
            # A subscription token names a channel; accepting it here would let its
            # holder connect as the user it was issued to (Centrifugo refuses it too).
            raise TokenInvalid("a subscription token cannot be used to connect")
        user = claims.get("sub", "")
        if not _is_text(user):
            raise TokenInvalid("sub must be a string")
        channels = claims.get("channels", [])
        if not isinstance(channels, list) or not all(_is_text(c) for c in channels):
            raise TokenInvalid("channels must be a list of strings")
        return ConnectionClaims(
            user=user,
            expire_at=_expire_at(claims),
            info=_info(claims),
            channels=tuple(channels),
        )

    def subscription(self, token: str, channel: str, user: str) -> SubscriptionClaims:
        """Claims of a subscription token, which must name `channel` and `user`."""
        try:
            claims = self._decode(token)
        except TokenExpired:
            raise ReplyError(ErrorCode.TOKEN_EXPIRED) from None
        except TokenInvalid as exc:
            raise ReplyError(ErrorCode.PERMISSION_DENIED, f"invalid token: {exc}") from None
        if claims.get("channel") != channel:
            raise ReplyError(ErrorCode.PERMISSION_DENIED, "token is for another channel")
        if claims.get("sub", "") != user:
            raise ReplyError(ErrorCode.PERMISSION_DENIED, "token is for another user")
        try:
            return SubscriptionClaims(user, channel, _expire_at(claims), _info(claims))
        except TokenInvalid as exc:
            raise ReplyError(ErrorCode.PERMISSION_DENIED, f"invalid token: {exc}") from None


def _is_text(value: object) -> bool:
    """A string that can be sent: JSON escapes let a token carry lone surrogates."""
    if not isinstance(value, str):
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


#: Latest expiry a token may name (the stores and timers keep signed 64-bit seconds).
MAX_EXPIRE_AT = 2**63 - 1


def _expire_at(claims: dict[str, Any]) -> int:
    """`expire_at` (else `exp`) as whole seconds; TokenInvalid unless a finite number >= 0."""
    name = "expire_at" if "expire_at" in claims else "exp"
    value = claims.get(name, 0)
    # bool is an int to Python, not a time to anyone; inf and nan are floats.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TokenInvalid(f"{name} must be a number of seconds")
    if not 0 <= value <= MAX_EXPIRE_AT:
        raise TokenInvalid(f"{name} must be 0 to {MAX_EXPIRE_AT}")
    return int(value)


def _info(claims: dict[str, Any]) -> bytes:
    """The `info` claim as compact JSON, checked like any payload (depth, UTF-8)."""
    info = claims.get("info")
    if info is None:
        return b""
    try:
        return compact_json(msgspec.json.encode(info))
    except (InvalidPayload, UnicodeEncodeError, RecursionError, ValueError) as exc:
        raise TokenInvalid(f"info: {exc}") from None


#: Largest `ttl` in a reply: the protocol's field is a uint32.
MAX_TTL = 0xFFFFFFFF


def ttl_of(expire_at: int) -> int:
    """Seconds until `expire_at` (0 when it does not expire), at most MAX_TTL."""
    return min(MAX_TTL, max(0, expire_at - int(time.time()))) if expire_at else 0


def _public_key(value: str, algorithm: Any, setting: str) -> Any:
    try:
        # prepare_key is an instance method; the hash is irrelevant to loading the key.
        return algorithm(algorithm.SHA256).prepare_key(load_key(value))
    except (ValueError, TypeError, jwt.InvalidKeyError) as exc:
        raise ConfigError(setting, f"not a usable public key: {exc}") from None
