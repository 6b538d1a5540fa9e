"""`patrol keys`: issue, revoke and list the API keys of the Open311 gateway's client systems (streams/gateway/keys.py).
A key is printed once, when it is issued; the database keeps its SHA-256 only."""

from __future__ import annotations

import asyncio
from typing import Literal

import typer
from rich.console import Console
from rich.table import Table

keys_app = typer.Typer(help="API keys of the Open311 gateway's client systems (stored as SHA-256 hashes).",
                       no_args_is_help=True)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def _database_url() -> str:
    from streams.cli import _settings

    settings = _settings()
    if not settings.database_url:
        err_console.print("PATROL_DATABASE_URL is not set: keys live in the gateway's database")
        raise typer.Exit(2)
    return settings.database_url


def _run(action):
    import asyncpg

    async def with_connection():
        connection = await asyncpg.connect(_database_url())
        try:
            return await action(connection)
        finally:
            await connection.close()

    return asyncio.run(with_connection())


@keys_app.command("issue")
def keys_issue(
    client: str = typer.Option(..., "--client", help="the client system's name, e.g. city-app or hotline-12345"),
    role: Literal["citizen_app", "hotline", "sensor"] = typer.Option(..., "--role", help="what it may post"),
) -> None:
    """Issue a key for a client system; the key is printed once (only its hash is kept)."""
    from streams.gateway.keys import KeyRefused, issue_key

    try:
        key = _run(lambda connection: issue_key(connection, client, role))
    except KeyRefused as exc:
        err_console.print(f"refused: {exc}")
        raise typer.Exit(2)
    err_console.print(f"issued a {role} key for {client}; hand it over now, it is not shown again:")
    print(key)


@keys_app.command("revoke")
def keys_revoke(client: str = typer.Option(..., "--client", help="the client system whose key stops working")) -> None:
    """Revoke a client system's key in force, at once (its posted requests stay its own)."""
    from streams.gateway.keys import revoke_key

    if not _run(lambda connection: revoke_key(connection, client)):
        err_console.print(f"client {client!r} has no key in force")
        raise typer.Exit(1)
    console.print(f"revoked the key of {client}")


@keys_app.command("list")
def keys_list() -> None:
    """The client systems, their roles and when their keys were issued and revoked (never the keys)."""
    from streams.gateway.keys import list_clients

    table = Table(title="Open311 gateway clients")
    for column in ("client", "role", "issued", "revoked"):
        table.add_column(column)
    for row in _run(list_clients):
        table.add_row(row["client"], row["role"], row["issued_at"].isoformat(timespec="seconds"),
                      row["revoked_at"].isoformat(timespec="seconds") if row["revoked_at"] else "")
    console.print(table)
