"""The field API's verbs of `patrol`: `patrol field` runs the service; `patrol field-credentials issue|revoke`
hands out and withdraws device credentials (docs/contracts.md, "CLI"; deploy/README.md for operators)."""

from __future__ import annotations

import asyncio
from typing import Optional

import typer

credentials_app = typer.Typer(help="Device credentials of field units: issue and revoke.", no_args_is_help=True)


def _settings_with_database():
    from streams.settings import Settings

    settings = Settings()
    if not settings.database_url:
        typer.echo("PATROL_DATABASE_URL is not set: credentials live in the platform's PostgreSQL", err=True)
        raise typer.Exit(2)
    return settings


async def _with_pool(settings, work):
    import asyncpg

    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        return await work(pool)
    finally:
        await pool.close()


@credentials_app.command("issue")
def issue_command(unit_id: str = typer.Argument(..., help="the unit the new device acts for"),
                  by: str = typer.Option(..., "--by", help="who issues it (kept with the credential)")) -> None:
    """A new device credential for UNIT_ID: prints the device id and its secret, shown this once only."""
    from processors.messages import Identifier  # noqa: F401 - the unit id's rule is the messages'
    from pydantic import TypeAdapter, ValidationError

    from streams.field_api import credentials

    try:
        TypeAdapter(Identifier).validate_python(unit_id)
    except ValidationError:
        typer.echo(f"{unit_id!r} is not a valid unit id", err=True)
        raise typer.Exit(2)
    settings = _settings_with_database()
    issued = asyncio.run(_with_pool(settings, lambda pool: credentials.issue(pool, unit_id, by)))
    typer.echo(f"unit_id:   {issued.unit_id}\ndevice_id: {issued.device_id}\nsecret:    {issued.secret}")


@credentials_app.command("revoke")
def revoke_command(device: Optional[str] = typer.Option(None, "--device", help="the device id to revoke"),
                   unit: Optional[str] = typer.Option(None, "--unit", help="revoke every device of this unit"),
                   by: str = typer.Option(..., "--by", help="who revokes (kept with the credential)")) -> None:
    """Revoke one device (--device) or all of a unit's (--unit): their tokens stop working at the next request."""
    from streams.field_api import credentials

    if (device is None) == (unit is None):
        typer.echo("give exactly one of --device and --unit", err=True)
        raise typer.Exit(2)
    settings = _settings_with_database()
    revoked = asyncio.run(_with_pool(settings, lambda pool: credentials.revoke(pool, by, device_id=device,
                                                                                unit_id=unit)))
    typer.echo(f"revoked: {', '.join(revoked) if revoked else 'nothing (none active)'}")


def field_command(host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0 in a container)"),
                  port: int = typer.Option(8090, min=1, max=65535, help="HTTP port")) -> None:
    """The field API and the field-unit web app (HTTP): device sessions, unit events in, each unit's orders out."""
    import uvicorn

    from processors.register import RegisterError
    from streams.field_api.app import create_app
    from streams.reference import load_geography, load_register
    from streams.settings import Settings

    settings = Settings()
    missing = [name for name, value in (("PATROL_KAFKA_BOOTSTRAP", settings.kafka_bootstrap),
                                        ("PATROL_DATABASE_URL", settings.database_url)) if not value]
    if missing:
        typer.echo(f"{' and '.join(missing)} not set: the field API needs a running broker and database", err=True)
        raise typer.Exit(2)
    try:
        geography, register = load_geography(settings), load_register(settings)
    except (RegisterError, ValueError, OSError) as exc:
        typer.echo(f"refusing to start: {exc}", err=True)
        raise typer.Exit(2)
    uvicorn.run(create_app(settings, geography, register), host=host, port=port,
                log_level=settings.log_level.lower(), proxy_headers=True, server_header=False)


def add_commands(app: typer.Typer) -> None:
    app.command("field")(field_command)
    app.add_typer(credentials_app, name="field-credentials")
