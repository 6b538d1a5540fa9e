"""The gateway's callers: API keys, one per client system, each with a role, kept in PostgreSQL as SHA-256 hashes.

A key is `secrets.token_urlsafe(32)` (256 random bits), shown once when `patrol keys issue` makes it; the table
`gateway_clients` keeps its SHA-256 only. The usual practice for random tokens: with that much entropy a fast hash
cannot be guessed back, so no slow password hash is needed, and a lookup is one indexed read.

Roles decide what a client may post (`may_post`): a citizen app may not post public-security or priority-1
matters; a hotline (staffed by call takers) and a sensor network may. A role also names the report's `source`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Literal

import asyncpg

from processors.catalogue import Category

Role = Literal["citizen_app", "hotline", "sensor"]
ROLES: tuple[Role, ...] = ("citizen_app", "hotline", "sensor")
# the IncidentReport source each role's reports carry
SOURCES = {"citizen_app": "app", "hotline": "hotline", "sensor": "sensor"}
# what a citizen app may not post: police matters and the most urgent ones, which pre-empt units at work
RESTRICTED_DOMAINS = frozenset({"public_security"})
RESTRICTED_PRIORITY = 1
TRUSTED_ROLES = frozenset({"hotline", "sensor"})
CLIENT_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
KEY_MAX = 200


@dataclass(frozen=True)
class Client:
    """The client system a key belongs to."""

    client: str
    role: Role


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def may_post(role: Role, category: Category) -> str | None:
    """Why this role may not post this category, or None when it may."""
    if role in TRUSTED_ROLES:
        return None
    if category.domain in RESTRICTED_DOMAINS:
        return (f"service_code {category.code!r} is a {category.domain.replace('_', ' ')} matter: it is taken "
                f"from the hotline or a sensor network only; a {role} key may not post it (call the hotline)")
    if category.priority <= RESTRICTED_PRIORITY:
        return (f"service_code {category.code!r} is priority {category.priority}: it is taken from the hotline or "
                f"a sensor network only; a {role} key may not post it (call the hotline)")
    return None


async def client_for(connection: asyncpg.Connection, key: str | None) -> Client | None:
    """The client a key in force belongs to; None for no key, an unknown key or a revoked one."""
    if not key or len(key) > KEY_MAX:
        return None
    row = await connection.fetchrow(
        "SELECT client, role FROM gateway_clients WHERE key_sha256 = $1 AND revoked_at IS NULL", key_hash(key))
    return Client(row["client"], row["role"]) if row is not None else None


class KeyRefused(ValueError):
    """A key that cannot be issued or revoked; the message says why."""


async def issue_key(connection: asyncpg.Connection, client: str, role: str) -> str:
    """A new key for a client system that has none in force; the key itself is returned once and never stored."""
    if not CLIENT_PATTERN.match(client):
        raise KeyRefused(f"client name {client!r}: 1-64 letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise KeyRefused(f"role {role!r}: one of {', '.join(ROLES)}")
    key = secrets.token_urlsafe(32)
    try:
        await connection.execute("INSERT INTO gateway_clients (key_sha256, client, role) VALUES ($1, $2, $3)",
                                 key_hash(key), client, role)
    except asyncpg.UniqueViolationError:
        raise KeyRefused(f"client {client!r} has a key in force: revoke it first (patrol keys revoke "
                        f"--client {client})") from None
    return key


async def revoke_key(connection: asyncpg.Connection, client: str) -> int:
    """Revoke the client's key in force; how many were revoked (0 or 1)."""
    result = await connection.execute(
        "UPDATE gateway_clients SET revoked_at = now() WHERE client = $1 AND revoked_at IS NULL", client)
    return int(result.split()[-1])


async def list_clients(connection: asyncpg.Connection) -> list[asyncpg.Record]:
    return await connection.fetch(
        "SELECT client, role, issued_at, revoked_at FROM gateway_clients ORDER BY client, issued_at")
