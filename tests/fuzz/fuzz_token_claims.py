"""Fuzz token claims parsing: any payload, properly signed, is claims or an invalid token.

The input is used two ways: as the whole token text (header, signature and
all: the parser in front of the signature check), and as the JSON payload of
a correctly signed HS256 token (the claim checks behind it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math

import atheris

with atheris.instrument_imports(include=["tidings", "jwt"]):
    from tidings.core.auth import MAX_EXPIRE_AT, TokenExpired, TokenInvalid, TokenVerifier
    from tidings.errors import ReplyError
    from tidings.protocol.centrifuge.payload import compact_json

SECRET = "fuzz-secret-0123456789-0123456789-abc"
VERIFIER = TokenVerifier(SECRET)
SEEDS = [
    b'{"sub":"alice","exp":4102444800,"info":{"name":"A"},"channels":["news"]}',
    b'{"sub":"bob","channel":"$room","expire_at":4102444800}',
    b'{"sub":"","iat":1,"nbf":1,"exp":1e30}',
    b'{"sub":"\\ud800","expire_at":"x","info":[[[[]]]]}',
]


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def signed(payload: bytes) -> str:
    head = _b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + _b64(payload)
    return (head + b"." + _b64(hmac.new(SECRET.encode(), head, hashlib.sha256).digest())).decode()


def one_input(data: bytes) -> None:
    for token in (data.decode("latin-1"), signed(data)):
        try:
            claims = VERIFIER.connection(token)
        except (TokenInvalid, TokenExpired):
            pass
        else:
            claims.user.encode()  # sendable
            assert all(isinstance(c, str) for c in claims.channels)
            assert 0 <= claims.expire_at <= MAX_EXPIRE_AT and not math.isnan(claims.expire_at)
            if claims.info:
                assert compact_json(claims.info) == claims.info
        try:
            VERIFIER.subscription(token, "$room", "bob")
        except ReplyError as exc:
            assert exc.code in (103, 109), exc.code


def main() -> None:
    from tests.fuzz.harness import run

    run(one_input, SEEDS)


if __name__ == "__main__":
    main()
