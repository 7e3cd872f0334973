"""Connection and subscription tokens (JWT), verified strictly.

Only the algorithms of the configured keys are accepted: with an HMAC
secret, HS256/HS384/HS512. `alg: none` and every other algorithm are
refused before any signature check.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import jwt
import msgspec

from tidings.errors import ReplyError
from tidings.protocol.centrifuge.codes import ErrorCode

HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")


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
    extra: dict[str, Any] = field(default_factory=dict)


class TokenVerifier:
    """Verifies JWTs against the configured HMAC secret."""

    def __init__(self, hmac_secret: str, audience: str = "", issuer: str = "") -> None:
        self._secret = hmac_secret
        self._audience = audience or None
        self._issuer = issuer or None

    @property
    def enabled(self) -> bool:
        return bool(self._secret)

    def _decode(self, token: str) -> dict[str, Any]:
        if not self._secret:
            raise TokenInvalid("no token key configured")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"malformed token: {exc}") from None
        if header.get("alg") not in HMAC_ALGORITHMS:
            raise TokenInvalid(f"algorithm {header.get('alg')!r} not accepted")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=list(HMAC_ALGORITHMS),
                audience=self._audience,
                issuer=self._issuer,
                options={"require": [], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise TokenExpired("token expired") from None
        except jwt.PyJWTError as exc:
            raise TokenInvalid(str(exc)) from None
        return claims

    def connection(self, token: str) -> ConnectionClaims:
        claims = self._decode(token)
        user = claims.get("sub", "")
        if not isinstance(user, str):
            raise TokenInvalid("sub must be a string")
        channels = claims.get("channels", [])
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
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
        return SubscriptionClaims(user, channel, _expire_at(claims), _info(claims))


def _expire_at(claims: dict[str, Any]) -> int:
    value = claims.get("expire_at", claims.get("exp", 0))
    if not isinstance(value, int | float):
        raise TokenInvalid("exp must be a number")
    return int(value)


def _info(claims: dict[str, Any]) -> bytes:
    info = claims.get("info")
    return b"" if info is None else msgspec.json.encode(info)


def ttl_of(expire_at: int) -> int:
    """Seconds until `expire_at` (0 when it does not expire)."""
    return max(0, expire_at - int(time.time())) if expire_at else 0
