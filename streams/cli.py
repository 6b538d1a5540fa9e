"""The `patrol` command line (verbs fixed by docs/contracts.md, CLI)."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import tempfile
from pathlib import Path
from typing import Literal, Optional

import typer
from rich.text import Text

from streams.field_api.commands import add_commands as add_field_commands
from streams.gateway.accounts_cli import accounts_app
from streams.simulation.roster_commands import add_commands as add_roster_commands
from streams.settings import Settings

from streams.cli_support import (  # noqa: F401 - the verbs' shared parts, importable from here as before
    _data_dir_or_exit,
    _extra_or_exit,
    _reference_or_exit,
    _register_or_exit,
    _settings,
    console,
    err_console,
)
from streams.cli_tools import add_tools

app = typer.Typer(
    help="patrol-dispatch: intake, dispatch and SLA tracking for an integrated 24-hour patrol brigade.",
    no_args_is_help=True,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        from streams import __version__

        console.print(f"patrol-dispatch {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                          help="print the version and exit")) -> None:
    """patrol-dispatch: intake, dispatch and SLA tracking for an integrated 24-hour patrol brigade."""


@app.command()
def up(
    sample: bool = typer.Option(False, "--sample", help="only a small fixed sample of reports, checked one by one"),
    hours: float = typer.Option(24.0, min=0.1, help="length of the simulated day"),
    speedup: float = typer.Option(360.0, min=1.0, help="how much faster than the clock the day runs"),
    seed: int = typer.Option(1, help="the same seed plays the same day"),
    timeout: float = typer.Option(120.0, help="seconds to wait for the worker to settle (--sample)"),
) -> None:
    """The main job: embedded broker and database (unless configured), a worker, a simulated day, the report."""
    from streams.simulation.up import DayOptions, run_up

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    # Our own handler, so that asyncio.run does not install its own: that one cancels the
    # running task, and a library that swallows the cancellation would let Ctrl-C pass unnoticed.
    signal.signal(signal.SIGINT, interrupt)
    settings = _settings()
    _data_dir_or_exit(settings)
    # the live view owns the terminal: client libraries' routine lines would tear it
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    try:
        day = None if sample else DayOptions(hours=hours, speedup=speedup, seed=seed)
        code = run_up(settings, console, timeout_s=timeout, day=day)
    except KeyboardInterrupt:
        # the finally-blocks inside run_up have stopped the worker, the broker and the database
        err_console.print("interrupted: worker, broker and database stopped")
        code = 130
    raise typer.Exit(code)


@app.command()
def worker() -> None:
    """Run a worker: intake, district cores and (unless PATROL_SINK_IN_WORKER=false) the PostgreSQL sink."""
    from streams.operations.embedded import embedded_infrastructure
    from streams.sink.migrate import migrate
    from streams.runtime.topics import ensure_topics
    import faust

    from streams.pipeline.worker import build_app

    settings = _settings()
    catalogue, geography = _reference_or_exit(settings)
    if settings.uses_embedded_broker or settings.uses_embedded_database:
        _data_dir_or_exit(settings)
    # faust (the worker's runtime) must have a directory of its own, and keeps nothing in it: a fresh one in
    # the system's temp dir, so that a worker starts in any directory (a read-only one too) and two workers
    # started in the same one never share it
    with tempfile.TemporaryDirectory(prefix=f"patrol-worker-{settings.app_id}-") as scratch, \
            embedded_infrastructure(settings) as live:
        if settings.uses_embedded_database:
            # an embedded database is ours alone; a real one is migrated by `patrol migrate`
            asyncio.run(migrate(live.database_url))
        asyncio.run(ensure_topics(live))
        faust_app = build_app(live, catalogue, geography, datadir=Path(scratch), register=_register_or_exit(settings))
        # What is loaded by now (modules, the catalogue, the streets) lives as long as the process. Frozen, it
        # is no longer walked by every full collection (46 ms each, measured), which reports would wait for.
        gc.collect()
        gc.freeze()
        # SIGTERM/SIGINT stop the app, which runs the worker's stop sequence first (streams/pipeline/worker.py)
        faust.Worker(faust_app, loglevel=settings.log_level, quiet=True,
                     redirect_stdouts=False).execute_from_commandline()


@app.command()
def sink() -> None:
    """Run the PostgreSQL sink on its own (the workers then run with PATROL_SINK_IN_WORKER=false)."""
    from streams.runtime import health
    from streams.runtime.consumer_loop import SHUTDOWN_GRACE_S, exit_if_not_stopped_in
    from streams.sink.sink import Sink

    settings = _settings()
    if settings.uses_embedded_broker or settings.uses_embedded_database:
        err_console.print("PATROL_KAFKA_BOOTSTRAP and PATROL_DATABASE_URL must be set: the sink joins a running "
                          "broker and database (the worker's)")
        raise typer.Exit(2)

    async def run() -> None:
        sink = Sink(settings)
        loop = asyncio.get_running_loop()
        def stop() -> None:
            # the batch in hand is written and committed first, so the next sink has nothing to redo
            sink.stop()
            exit_if_not_stopped_in(SHUTDOWN_GRACE_S)

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop)
        health.set_readiness(sink.ready)
        probes = await health.serve(settings)  # /metrics, /healthz, /readyz
        try:
            await sink.run_forever()
        finally:
            if probes is not None:
                await probes.cleanup()

    asyncio.run(run())


@app.command("migrate")
def migrate_command() -> None:
    """Apply the database migrations that have not been applied (PATROL_DATABASE_URL)."""
    from streams.sink.migrate import migrate

    settings = _settings()
    if not settings.database_url:
        err_console.print("PATROL_DATABASE_URL is not set: nothing to migrate (an embedded database migrates itself)")
        raise typer.Exit(2)
    applied = asyncio.run(migrate(settings.database_url))
    console.print(f"applied {len(applied)} migration(s): {', '.join(f'{m.version:04d}_{m.name}' for m in applied) or 'none needed'}")


@app.command("publish")
def publish_command(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSON lines; '-' is not supported"),
    topic: Optional[str] = typer.Option(None, help="send every line to this topic as it is (incident.reports or unit.events)"),
) -> None:
    """Publish JSON lines to incident.reports (lines with report_id) or unit.events (lines with unit_id)."""
    from streams.operations.publish import UnroutableLine, publish, read_lines
    from streams.runtime.topics import INBOUND_TOPICS

    settings = _settings()
    if not settings.kafka_bootstrap:
        err_console.print("PATROL_KAFKA_BOOTSTRAP is not set: publish needs a running broker")
        raise typer.Exit(2)
    if topic is not None and topic not in INBOUND_TOPICS:
        err_console.print(f"--topic must be one of {', '.join(INBOUND_TOPICS)}")
        raise typer.Exit(2)
    try:
        messages = read_lines(file.read_bytes().splitlines(), topic)
    except UnroutableLine as exc:
        err_console.print(f"{file}: {exc}")
        raise typer.Exit(2)
    asyncio.run(publish(settings, messages))
    counts: dict[str, int] = {}
    for m in messages:
        counts[m.topic] = counts.get(m.topic, 0) + 1
    console.print("published " + ", ".join(f"{n} to {t}" for t, n in counts.items()))


@app.command("unit")
def unit_command(
    unit_id: str = typer.Argument(..., help="this unit's id: the key of its dispatch orders and of its unit events"),
    log_on: bool = typer.Option(False, "--log-on", help="first publish a log_on with the profile below; "
                                "without it the unit is assumed logged on"),
    agency: Optional[str] = typer.Option(None, help="police, traffic, city_management, …"),
    kind: Literal["officer", "auxiliary"] = typer.Option("officer"),
    street: Optional[str] = typer.Option(None, help="home street code, e.g. JJ-SYJ"),
    mode: Literal["foot", "bike", "car"] = typer.Option("foot"),
    lat: Optional[float] = typer.Option(None, help="where the unit is now (WGS-84)"),
    lon: Optional[float] = typer.Option(None, help="where the unit is now (WGS-84)"),
    district: str = typer.Option("JINJIANG"),
    delegation: Optional[list[str]] = typer.Option(
        None, "--delegation", help="a catalogue code it may act on under delegated authority; repeatable"),
) -> None:
    """Field-unit terminal, a client of the field API: this unit's orders on screen; single keys report its progress."""
    from streams.field_unit import TerminalError, build_log_on, run_terminal, validate_unit_id

    # Not _settings(): its log lines on stderr would tear the live screen; the
    # terminal shows library warnings in its own log panel instead.
    settings = Settings()
    try:
        validate_unit_id(unit_id)
        if log_on:
            profile = build_log_on(unit_id, agency=agency, kind=kind, street=street, mode=mode, lat=lat, lon=lon,
                                   district=district, delegations=delegation)
        else:
            given = [name for name, value in (("--agency", agency), ("--street", street), ("--lat", lat),
                                              ("--lon", lon), ("--delegation", delegation or None)) if value is not None]
            if given:
                raise ValueError(f"{', '.join(given)} only mean something with --log-on")
            profile = None
    except ValueError as exc:
        err_console.print(str(exc))
        raise typer.Exit(2)
    try:
        code = asyncio.run(run_terminal(settings, unit_id, profile, console))
    except TerminalError as exc:
        err_console.print(Text(str(exc), style="red"))  # the API's reasons quote what was sent: plain text
        code = 1
    except KeyboardInterrupt:
        code = 130
    raise typer.Exit(code)


@app.command()
def gateway(
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0 in a container)"),
    port: int = typer.Option(8080, min=1, max=65535, help="HTTP port"),
) -> None:
    """Open311 GeoReport v2 intake gateway (HTTP) for hotlines and citizen apps: POST /requests, GET /services…"""
    import uvicorn

    from streams.gateway import create_app

    settings = _settings()
    missing = [name for name, value in (("PATROL_KAFKA_BOOTSTRAP", settings.kafka_bootstrap),
                                        ("PATROL_DATABASE_URL", settings.database_url)) if not value]
    if missing:
        err_console.print(f"{' and '.join(missing)} not set: the gateway needs a running broker and database")
        raise typer.Exit(2)
    catalogue, geography = _reference_or_exit(settings)
    uvicorn.run(create_app(settings, catalogue, geography), host=host, port=port,
                log_level=settings.log_level.lower(), proxy_headers=True, server_header=False)


app.add_typer(accounts_app, name="accounts")  # `patrol accounts add/disable` (streams/gateway/accounts_cli.py)


def _add_keys() -> None:
    from streams.gateway.keys_cli import keys_app

    app.add_typer(keys_app, name="keys")  # patrol keys issue | revoke | list


_add_keys()


add_field_commands(app)
add_tools(app)


# the roster's verbs: `patrol roster plan`
add_roster_commands(app)


def main() -> None:
    app(prog_name="patrol")


if __name__ == "__main__":
    main()
