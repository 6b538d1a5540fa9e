"""Signed bearer tokens (JWT, HS256, PyJWT): the command API's for dispatchers and the field API's for devices.
One way to sign and read them, and one rule for their keys.

A token is only what it claims: whoever checks it still asks the database whether the account or the device may
act now, so that disabling or revoking takes effect at once rather than at expiry.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import jwt

ALGORITHM = "HS256"
# a key shorter than the hash's output is weak for HMAC (RFC 7518 §3.2): refused rather than used
MIN_KEY_BYTES = 32


class WeakKey(ValueError):
    """A signing key too short to be used."""


def key_bytes(key: str, setting: str) -> bytes:
    """`key` (from `setting`) as the bytes to sign with; WeakKey if it is shorter than MIN_KEY_BYTES."""
    raw = key.encode()
    if len(raw) < MIN_KEY_BYTES:
        raise WeakKey(f"{setting} must be at least {MIN_KEY_BYTES} bytes")
    return raw


def sign(key: bytes, issuer: str, claims: dict, ttl_s: float, now: datetime | None = None) -> tuple[str, datetime]:
    """A token carrying `claims`, issued by `issuer` now and expiring `ttl_s` later; with its expiry."""
    now = now or datetime.now(timezone.utc)
    expires = now + timedelta(seconds=ttl_s)
    token = jwt.encode({**claims, "iss": issuer, "iat": now, "exp": expires}, key, algorithm=ALGORITHM)
    return token, expires


def read(key: bytes, issuer: str, token: str, required: tuple[str, ...]) -> dict | None:
    """The claims of `token` if it is `issuer`'s, signed with `key`, unexpired and carries every `required` claim;
    else None."""
    try:
        return jwt.decode(token, key, algorithms=[ALGORITHM], issuer=issuer,
                          options={"require": [*required, "exp", "iat", "iss"]})
    except jwt.PyJWTError:
        return None
