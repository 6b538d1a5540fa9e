"""The `patrol` command line (verbs fixed by docs/contracts.md, CLI)."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import signal
import sys
import tempfile
from pathlib import Path
from typing import Literal, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from streams.field_api.commands import add_commands as add_field_commands
from streams.accounts_cli import accounts_app
from streams.settings import Settings

app = typer.Typer(
    help="patrol-dispatch: intake, dispatch and SLA tracking for an integrated 24-hour patrol brigade.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def _print_version(value: bool) -> None:
    if value:
        from streams import __version__

        console.print(f"patrol-dispatch {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                          help="print the version and exit")) -> None:
    """patrol-dispatch: intake, dispatch and SLA tracking for an integrated 24-hour patrol brigade."""


def _settings() -> Settings:
    from streams.runtime.logs import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    return settings


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
def dashboards(out: Optional[Path] = typer.Option(
        None, help="where to write the JSON (default: grafana/dashboards of the source tree, else the current directory)")) -> None:
    """Write the Grafana dashboards (generated from streams/operations/dashboards.py) as JSON files."""
    _extra_or_exit("dashboards", "grafana_foundation_sdk")
    from streams.operations.dashboards import write_dashboards

    if out is None:
        committed = Path(__file__).resolve().parent.parent / "grafana" / "dashboards"
        # an installed wheel has no source tree around it
        out = committed if committed.is_dir() else Path.cwd()
    for path in write_dashboards(out):
        console.print(f"wrote {path}")


@app.command()
def simulate(
    hours: float = typer.Option(24.0, min=0.1, help="length of the simulated day"),
    speedup: float = typer.Option(1.0, min=1.0, help="how much faster than the clock the day runs"),
    seed: int = typer.Option(1, help="the same seed plays the same day"),
    write_catalogue: Optional[Path] = typer.Option(
        None, help="write the catalogue with limits divided by --speedup here, for the worker to run with"),
) -> None:
    """Play a simulated day (reports, shifts, field units answering orders) against a running worker."""
    from datetime import datetime, timedelta, timezone

    from rich.live import Live

    from streams.simulation.day_run import play_day
    from streams.reference import catalogue_text, load_roster
    from streams.simulation.simulator import FieldCrew, plan_day, scaled_catalogue

    settings = _settings()
    catalogue, geography = _reference_or_exit(settings)
    if write_catalogue is not None:
        write_catalogue.parent.mkdir(parents=True, exist_ok=True)
        write_catalogue.write_text(scaled_catalogue(catalogue_text(settings), speedup))
        console.print(f"wrote the catalogue for a {speedup:g}× day to {write_catalogue}")
        return
    if not settings.kafka_bootstrap:
        err_console.print("PATROL_KAFKA_BOOTSTRAP is not set: simulate plays against a running broker and worker "
                          "(or use `patrol up`)")
        raise typer.Exit(2)
    if speedup != 1:
        err_console.print(f"note: at {speedup:g}× the worker must run with limits divided alike "
                          f"(`patrol simulate --speedup {speedup:g} --write-catalogue FILE`, then PATROL_CATALOGUE=FILE)")
    roster = load_roster()
    start = (datetime.now(timezone.utc) - timedelta(hours=hours)).astimezone(timezone(timedelta(hours=8)))
    plan = plan_day(catalogue, geography, roster, seed=seed, hours=hours, start=start)
    crew = FieldCrew(roster, catalogue, seed=seed, speedup=speedup)
    with Live(console=console, refresh_per_second=4) as screen:
        final = asyncio.run(play_day(settings, plan, crew, speedup, lambda p: screen.update(
            f"simulated {p.sim_time:%H:%M} ({100 * p.share:.0f}%) · published {p.published} · "
            f"orders answered {p.orders_seen} · unit events {p.unit_events}")))
    console.print(f"played {final.published} messages; the crew answered {final.orders_seen} orders "
                  f"with {final.unit_events} unit events")


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


@app.command()
def bench(
    quick: bool = typer.Option(False, "--quick", help="small sizes, about a minute (what the test suite runs)"),
    out: Path = typer.Option(Path("BENCHMARKS.md"), "--out",
                             help="where to write the report; the plots go to benchmarks/ beside it"),
) -> None:
    """Benchmarks: throughput, latency, decision cost, dispatch quality and memory; writes BENCHMARKS.md and plots."""
    import shlex

    _extra_or_exit("bench", "scipy", "matplotlib")
    from streams.bench.suite import run_bench

    settings = _settings()
    run_bench(settings, console, quick=quick, out=out, command="patrol " + shlex.join(sys.argv[1:]))


@app.command()
def schemas(
    out: Optional[Path] = typer.Option(
        None, help="write one <Message>.schema.json per message and asyncapi.json here (docs/schemas in the source tree)"),
    asyncapi: bool = typer.Option(False, "--asyncapi", help="print the AsyncAPI 3.0 document of the topics instead"),
) -> None:
    """The JSON Schema of every contract message and the AsyncAPI document of the topics, for other languages."""
    from streams.operations.asyncapi import asyncapi_document
    from streams.operations.schemas import json_schemas

    documents = json_schemas()
    if out is None:
        json.dump(asyncapi_document() if asyncapi else documents, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    out.mkdir(parents=True, exist_ok=True)
    documents = {f"{name}.schema.json": schema for name, schema in documents.items()}
    documents["asyncapi.json"] = asyncapi_document()
    for name, document in documents.items():
        (out / name).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    console.print(f"wrote {len(documents)} documents to {out}")


@app.command()
def catalogue() -> None:
    """Print the catalogue of powers and duties in force (PATROL_CATALOGUE or the shipped one)."""
    settings = _settings()
    cat, _ = _reference_or_exit(settings, geography=False)
    table = Table(title=f"Catalogue: {len(cat.categories)} categories")
    table.add_column("code", no_wrap=True)
    table.add_column("name")
    table.add_column("domain / agencies", overflow="fold")
    table.add_column("P", justify="right")
    table.add_column("ack / arrive / resolve", no_wrap=True)
    table.add_column("dedup", no_wrap=True)
    table.add_column("aux")
    for c in cat.categories:
        table.add_row(
            c.code, f"{c.name}\n{c.name_zh or ''}", f"{c.domain}\n{' + '.join(c.agencies)}", str(c.priority),
            " / ".join(_duration(s) for s in (c.sla.ack_s, c.sla.arrive_s, c.sla.resolve_s)),
            f"{c.dedup.radius_m:.0f} m\n{_duration(c.dedup.window_s)}", "yes" if c.auxiliary_ok else "no",
        )
    console.print(table)


@app.command()
def retention() -> None:
    """Erase reporters' personal data older than PATROL_REPORTER_RETENTION_DAYS (the sink also does, hourly)."""
    from streams.sink.retention import run_once

    settings = _settings()
    if not settings.database_url:
        err_console.print("PATROL_DATABASE_URL is not set: retention erases in a running database")
        raise typer.Exit(2)
    erased = asyncio.run(run_once(settings))
    console.print(f"erased the personal data of {erased.reports} report(s) and {erased.incidents} incident "
                  f"record(s) received before {erased.before.isoformat(timespec='seconds')}")


def _extra_or_exit(extra: str, *modules: str) -> None:
    """Exit saying which extra to install when a verb's libraries are not (a worker's install leaves them out)."""
    import importlib.util

    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        err_console.print(f"this verb needs {', '.join(missing)}: pip install 'patrol-dispatch[{extra}]'")
        raise typer.Exit(2)


app.add_typer(accounts_app, name="accounts")  # `patrol accounts add/disable` (streams/accounts_cli.py)


def _add_keys() -> None:
    from streams.gateway.keys_cli import keys_app

    app.add_typer(keys_app, name="keys")  # patrol keys issue | revoke | list


_add_keys()


def _data_dir_or_exit(settings: Settings) -> None:
    """Create PATROL_DATA_DIR with its parents (the embedded broker's and database's logs go there), or exit
    saying why it cannot be: a traceback from deep inside the broker's start would not."""
    try:
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=settings.data_dir):
            pass
    except OSError as exc:
        err_console.print(f"[red]refusing to start:[/] PATROL_DATA_DIR {settings.data_dir} cannot be written "
                          f"({exc.strerror or exc}): set PATROL_DATA_DIR to a directory that can")
        raise typer.Exit(2)


def _reference_or_exit(settings: Settings, geography: bool = True):
    from processors.catalogue import CatalogueError
    from processors.geography import GeographyError
    from streams.reference import load_catalogue, load_geography

    try:
        return load_catalogue(settings), (load_geography(settings) if geography else None)
    except (CatalogueError, GeographyError, OSError) as exc:
        err_console.print(f"[red]refusing to start:[/] {exc}")
        raise typer.Exit(2)


def _register_or_exit(settings: Settings):
    from processors.register import RegisterError
    from streams.reference import load_register

    try:
        return load_register(settings)
    except (RegisterError, OSError) as exc:
        err_console.print(f"[red]refusing to start:[/] {exc}")
        raise typer.Exit(2)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


# the field API's verbs: `patrol field`, `patrol field-credentials issue|revoke`
add_field_commands(app)


def main() -> None:
    app(prog_name="patrol")


if __name__ == "__main__":
    main()
