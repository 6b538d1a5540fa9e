"""`patrol accounts add/disable`: issuing and withdrawing the command API's dispatcher accounts (the verbs of
docs/contracts.md, CLI; mounted by streams/cli.py)."""

from __future__ import annotations

import asyncio
import sys

import typer
from rich.console import Console

from streams.settings import Settings

console = Console()
err_console = Console(stderr=True, soft_wrap=True)
MIN_PASSWORD = 12


accounts_app = typer.Typer(help="Dispatcher accounts of the command API (/command/v1): add, disable.",
                           no_args_is_help=True)
@accounts_app.command("add")
def accounts_add(
    name: str = typer.Argument(..., help="the account name, as the audit trail will show it (e.g. li.wei)"),
    role: str = typer.Option("dispatcher", help="dispatcher, or supervisor (may also cancel and close)"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="read the password from standard input"),
) -> None:
    """Add a dispatcher account (or set an existing one's role and password, enabling it again)."""
    from streams.gateway.accounts import ROLES, add_account

    if role not in ROLES:
        err_console.print(f"--role must be one of {', '.join(ROLES)}")
        raise typer.Exit(2)
    password = (sys.stdin.readline().rstrip("\n") if password_stdin
                else typer.prompt("password", hide_input=True, confirmation_prompt=True))
    if len(password) < MIN_PASSWORD:
        err_console.print(f"the password must be at least {MIN_PASSWORD} characters")
        raise typer.Exit(2)
    asyncio.run(_with_accounts(lambda connection: add_account(connection, name, role, password)))
    console.print(f"account {name} ({role}) is enabled")


@accounts_app.command("disable")
def accounts_disable(name: str = typer.Argument(..., help="the account name")) -> None:
    """Disable an account: its tokens stop working at once; its name stays in the audit trail."""
    from streams.gateway.accounts import disable_account

    if not asyncio.run(_with_accounts(lambda connection: disable_account(connection, name))):
        err_console.print(f"no enabled account {name!r}")
        raise typer.Exit(1)
    console.print(f"account {name} is disabled")


async def _with_accounts(work):
    """Run `work(connection)` on PATROL_DATABASE_URL, migrated first (the accounts table is migration 0010's)."""
    import asyncpg

    from streams.sink.migrate import migrate

    settings = Settings()
    if not settings.database_url:
        err_console.print("PATROL_DATABASE_URL is not set: the accounts live in the gateway's database")
        raise typer.Exit(2)
    await migrate(settings.database_url)
    connection = await asyncpg.connect(settings.database_url)
    try:
        return await work(connection)
    finally:
        await connection.close()
