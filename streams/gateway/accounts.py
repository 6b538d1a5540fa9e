"""Dispatcher accounts of the command API: passwords hashed with argon2id (streams.runtime.hashed_secrets), bearer tokens signed with
HS256 (PyJWT) under Settings.command_token_secret, and the `dispatcher_accounts` table (migration 0010).

A token names the account and its role and expires after Settings.command_token_ttl_s; every request checks the
account again, so that a disabled account's tokens stop working at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import asyncpg
import jwt
from streams.runtime import hashed_secrets
from streams.settings import Settings

ROLES = ("dispatcher", "supervisor")
ALGORITHM = "HS256"
ISSUER = "patrol-dispatch/command"
# a key shorter than the hash's output is weak for HMAC (RFC 7518 §3.2): refused rather than used
MIN_SECRET_BYTES = 32

@dataclass(frozen=True)
class Account:
    name: str
    role: str


class NotConfigured(RuntimeError):
    """The command API has no token secret (PATROL_COMMAND_TOKEN_SECRET) or one too short."""


def secret_of(settings: Settings) -> bytes:
    if settings.command_token_secret is None:
        raise NotConfigured("the command API is not configured: set PATROL_COMMAND_TOKEN_SECRET")
    secret = settings.command_token_secret.get_secret_value().encode()
    if len(secret) < MIN_SECRET_BYTES:
        raise NotConfigured(f"PATROL_COMMAND_TOKEN_SECRET must be at least {MIN_SECRET_BYTES} bytes")
    return secret


def issue_token(settings: Settings, account: Account, now: float | None = None) -> str:
    now = time.time() if now is None else now
    claims = {"sub": account.name, "role": account.role, "iss": ISSUER, "iat": int(now),
              "exp": int(now + settings.command_token_ttl_s)}
    return jwt.encode(claims, secret_of(settings), algorithm=ALGORITHM)


def read_token(settings: Settings, token: str) -> Account | None:
    """The account a token was issued to, if its signature, issuer and expiry hold (None otherwise)."""
    try:
        claims = jwt.decode(token, secret_of(settings), algorithms=[ALGORITHM], issuer=ISSUER,
                            options={"require": ["sub", "role", "exp", "iat", "iss"]})
    except jwt.InvalidTokenError:
        return None
    if claims.get("role") not in ROLES or not isinstance(claims.get("sub"), str):
        return None
    return Account(claims["sub"], claims["role"])


async def authenticate(connection: asyncpg.Connection, name: str, password: str) -> Account | None:
    """The enabled account with this name and password, or None."""
    row = await connection.fetchrow(
        "SELECT name, role, password_hash FROM dispatcher_accounts WHERE name = $1 AND disabled_at IS NULL", name)
    if not await hashed_secrets.matches(row["password_hash"] if row else None, password):
        return None
    return Account(row["name"], row["role"])


async def current(connection: asyncpg.Connection, account: Account) -> Account | None:
    """The account as it stands now: None once disabled; its role as now recorded."""
    row = await connection.fetchrow(
        "SELECT name, role FROM dispatcher_accounts WHERE name = $1 AND disabled_at IS NULL", account.name)
    return Account(row["name"], row["role"]) if row else None


async def add_account(connection: asyncpg.Connection, name: str, role: str, password: str) -> None:
    """Create the account, or (an existing name) set its role and password and enable it again."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    await connection.execute(
        """INSERT INTO dispatcher_accounts (name, role, password_hash) VALUES ($1, $2, $3)
           ON CONFLICT (name) DO UPDATE SET role = $2, password_hash = $3, disabled_at = NULL, updated_at = now()""",
        name, role, await hashed_secrets.hash_secret(password))


async def disable_account(connection: asyncpg.Connection, name: str) -> bool:
    """Disable the account (kept, for the audit trail's names); False if there is no such enabled account."""
    done = await connection.execute(
        "UPDATE dispatcher_accounts SET disabled_at = now(), updated_at = now() WHERE name = $1 "
        "AND disabled_at IS NULL", name)
    return done.endswith(" 1")
