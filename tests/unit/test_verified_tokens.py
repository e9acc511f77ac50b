"""The cache of verified tokens: it never outlives a token, nor a secret, nor its size."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from litestar.security.jwt import Token

from invite.kernel.auth import VerifiedTokens


def token(sub: str = "1") -> Token:
    return Token(exp=datetime.now(UTC) + timedelta(minutes=5), sub=sub)


def test_a_verified_token_is_kept_under_its_secret_only() -> None:
    tokens = VerifiedTokens()
    kept = token()
    tokens.put("secret", "a.b.c", kept)
    assert tokens.get("secret", "a.b.c") is kept
    assert tokens.get("rotated-secret", "a.b.c") is None
    assert tokens.get("secret", "a.b.d") is None


def test_an_expired_token_is_forgotten() -> None:
    tokens = VerifiedTokens()
    expired = token()
    tokens.put("secret", "a.b.c", expired)
    expired.exp = datetime.now(UTC) - timedelta(seconds=1)
    assert tokens.get("secret", "a.b.c") is None
    expired.exp = datetime.now(UTC) + timedelta(minutes=5)  # gone for good, not merely hidden
    assert tokens.get("secret", "a.b.c") is None


def test_the_oldest_goes_when_full() -> None:
    tokens = VerifiedTokens(size=2)
    for n in range(3):
        tokens.put("secret", f"t{n}", token(str(n)))
    assert [tokens.get("secret", f"t{n}") is not None for n in range(3)] == [False, True, True]
