"""Admin UI session tokens: signed, expiring, bound to the secret."""

from __future__ import annotations

from tidings.api.admin import AdminTokens


def test_tokens() -> None:
    tokens = AdminTokens("secret-a", ttl=60)
    token, expires_at = tokens.issue(now=1000.0)
    assert expires_at == 1060
    assert tokens.valid(token, now=1059.0)
    assert not tokens.valid(token, now=1060.0)  # expired
    assert not AdminTokens("secret-b", ttl=60).valid(token, now=1001.0)
    expires, nonce, signature = token.split(".")
    assert not tokens.valid(f"9999999999.{nonce}.{signature}", now=1001.0)
    for junk in ("", ".", "..", "abc", f"{expires}.{nonce}.", f"x.{nonce}.{signature}"):
        assert not tokens.valid(junk, now=1001.0)
    assert tokens.issue(now=1000.0)[0] != token  # a fresh nonce each time
