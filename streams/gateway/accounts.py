"""Dispatcher accounts of the command API: passwords hashed with argon2id (streams.runtime.hashed_secrets), bearer
tokens (streams.runtime.signed_tokens) under Settings.command_token_secret, and the `dispatcher_accounts` table
(migration 0010).

A token names the account and its role and expires after Settings.command_token_ttl_s; every request checks the
account again, so that a disabled account's tokens stop working at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from streams.runtime import hashed_secrets, signed_tokens
from streams.settings import Settings

ROLES = ("dispatcher", "supervisor")
ISSUER = "patrol-dispatch/command"


@dataclass(frozen=True)
class Account:
    name: str
    role: str


class NotConfigured(RuntimeError):
    """The command API has no token secret (PATROL_COMMAND_TOKEN_SECRET) or one too short."""


def secret_of(settings: Settings) -> bytes:
    if settings.command_token_secret is None:
        raise NotConfigured("the command API is not configured: set PATROL_COMMAND_TOKEN_SECRET")
    try:
        return signed_tokens.key_bytes(settings.command_token_secret.get_secret_value(), "PATROL_COMMAND_TOKEN_SECRET")
    except signed_tokens.WeakKey as exc:
        raise NotConfigured(str(exc)) from None


def issue_token(settings: Settings, account: Account) -> str:
    token, _ = signed_tokens.sign(secret_of(settings), ISSUER, {"sub": account.name, "role": account.role},
                                  settings.command_token_ttl_s)
    return token


def read_token(settings: Settings, token: str) -> Account | None:
    """The account a token was issued to, if its signature, issuer and expiry hold (None otherwise)."""
    claims = signed_tokens.read(secret_of(settings), ISSUER, token, ("sub", "role"))
    if claims is None or claims.get("role") not in ROLES or not isinstance(claims.get("sub"), str):
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
