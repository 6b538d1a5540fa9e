"""Device credentials of field units: a secret per device, bound to one unit, kept as an argon2id hash in
PostgreSQL (unit_credentials), and the signed tokens (streams.runtime.signed_tokens) a device gets for it, each bound to its unit.

A token says which unit and which device; the field API checks at every request that the device's credential is
not revoked, so revoking takes effect at once, not when the token expires.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from streams.runtime import hashed_secrets, signed_tokens

ISSUER = "patrol-field"


@dataclass(frozen=True)
class Issued:
    device_id: str
    unit_id: str
    secret: str


@dataclass(frozen=True)
class Identity:
    unit_id: str
    device_id: str


async def issue(pool: asyncpg.Pool, unit_id: str, issued_by: str) -> Issued:
    """A new device credential for `unit_id`; the secret is shown once and only its hash is kept."""
    device_id = f"dev-{secrets.token_hex(8)}"
    secret = secrets.token_urlsafe(24)
    await pool.execute("INSERT INTO unit_credentials (device_id, unit_id, secret_hash, issued_by) "
                       "VALUES ($1, $2, $3, $4)", device_id, unit_id, await hashed_secrets.hash_secret(secret),
                       issued_by)
    return Issued(device_id, unit_id, secret)


async def revoke(pool: asyncpg.Pool, revoked_by: str, *, device_id: str | None = None,
                 unit_id: str | None = None) -> list[str]:
    """Revoke one device's credential, or every device of a unit; the devices revoked."""
    rows = await pool.fetch(
        "UPDATE unit_credentials SET revoked_at = now(), revoked_by = $3 WHERE revoked_at IS NULL "
        "AND (device_id = $1 OR unit_id = $2) RETURNING device_id", device_id, unit_id, revoked_by)
    return [r["device_id"] for r in rows]


async def verify_secret(pool: asyncpg.Pool, device_id: str, secret: str) -> Identity | None:
    row = await pool.fetchrow("SELECT unit_id, secret_hash FROM unit_credentials WHERE device_id = $1 "
                              "AND revoked_at IS NULL", device_id)
    if not await hashed_secrets.matches(row["secret_hash"] if row else None, secret):
        return None
    return Identity(row["unit_id"], device_id)


async def active(pool: asyncpg.Pool, identity: Identity) -> bool:
    return bool(await pool.fetchval("SELECT 1 FROM unit_credentials WHERE device_id = $1 AND unit_id = $2 "
                                    "AND revoked_at IS NULL", identity.device_id, identity.unit_id))


def make_token(key: bytes, identity: Identity, ttl_s: float, now: datetime | None = None) -> tuple[str, datetime]:
    return signed_tokens.sign(key, ISSUER, {"sub": identity.unit_id, "dev": identity.device_id}, ttl_s, now)


def read_token(key: bytes, token: str) -> Identity | None:
    """The identity a token carries, if it is ours, intact and unexpired."""
    claims = signed_tokens.read(key, ISSUER, token, ("sub", "dev"))
    return Identity(str(claims["sub"]), str(claims["dev"])) if claims is not None else None
