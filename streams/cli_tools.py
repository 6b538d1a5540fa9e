"""The `patrol` verbs around the services: dashboards, simulated days, the bench, schemas, the catalogue and the
retention job (streams/cli.py registers them beside the services' verbs)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from streams.cli_support import _duration, _extra_or_exit, _reference_or_exit, _settings, console, err_console


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


def simulate(
    hours: float = typer.Option(24.0, min=0.1, help="length of the simulated day"),
    speedup: float = typer.Option(1.0, min=1.0, help="how much faster than the clock the day runs"),
    seed: int = typer.Option(1, help="the same seed plays the same day"),
    write_catalogue: Optional[Path] = typer.Option(
        None, help="write the catalogue with limits divided by --speedup here, for the worker to run with"),
    clock_epoch: Optional[str] = typer.Option(
        None, help="the workers run on a compressed clock (PATROL_CLOCK_RATE = --speedup, PATROL_CLOCK_EPOCH = "
                   "this ISO-8601 instant with its zone): the day starts then, on their clock"),
) -> None:
    """Play a simulated day (reports, shifts, field units answering orders) against a running worker."""
    from datetime import datetime, timedelta, timezone

    from rich.live import Live

    from streams.simulation.day_run import play_day
    from streams.reference import catalogue_text, load_roster
    from streams.simulation.simulator import ACK_TRANSIT_S, FieldCrew, plan_day, scaled_catalogue

    settings = _settings()
    catalogue, geography = _reference_or_exit(settings)
    epoch = _epoch_or_exit(clock_epoch)
    if write_catalogue is not None:
        write_catalogue.parent.mkdir(parents=True, exist_ok=True)
        write_catalogue.write_text(scaled_catalogue(catalogue_text(settings), speedup,
                                                    ACK_TRANSIT_S if speedup > 1 else 0.0))
        console.print(f"wrote the catalogue for a {speedup:g}× day to {write_catalogue}")
        return
    if not settings.kafka_bootstrap:
        err_console.print("PATROL_KAFKA_BOOTSTRAP is not set: simulate plays against a running broker and worker "
                          "(or use `patrol up`)")
        raise typer.Exit(2)
    if speedup != 1 and epoch is None:
        err_console.print(f"note: at {speedup:g}× the workers should run on a compressed clock (PATROL_CLOCK_RATE="
                          f"{speedup:g}, PATROL_CLOCK_EPOCH=T, then --clock-epoch T here), or with limits divided "
                          f"alike (`--write-catalogue FILE`, then PATROL_CATALOGUE=FILE), in which case they refuse "
                          "the units' positions as implausible")
    roster = load_roster()
    if epoch is not None:
        start = epoch  # the day starts when the workers' clock starts running at its pace
    else:
        start = datetime.now(timezone.utc) - timedelta(hours=hours)  # yesterday's: no report is in the future
    plan = plan_day(catalogue, geography, roster, seed=seed, hours=hours,
                    start=start.astimezone(timezone(timedelta(hours=8))))
    crew = FieldCrew(roster, catalogue, seed=seed, speedup=speedup)
    with Live(console=console, refresh_per_second=4) as screen:
        final = asyncio.run(play_day(settings, plan, crew, speedup, lambda p: screen.update(
            f"simulated {p.sim_time:%H:%M} ({100 * p.share:.0f}%) · published {p.published} · "
            f"orders answered {p.orders_seen} · unit events {p.unit_events}"), epoch=epoch))
    console.print(f"played {final.published} messages; the crew answered {final.orders_seen} orders "
                  f"with {final.unit_events} unit events")


def _epoch_or_exit(text: str | None):
    """--clock-epoch as an aware datetime, or exit 2 saying why it cannot be one."""
    from datetime import datetime

    if text is None:
        return None
    try:
        epoch = datetime.fromisoformat(text)
    except ValueError as exc:
        err_console.print(f"--clock-epoch {text!r} is not an ISO-8601 instant: {exc}")
        raise typer.Exit(2)
    if epoch.tzinfo is None:
        err_console.print(f"--clock-epoch {text!r} has no time zone: whose clock is it?")
        raise typer.Exit(2)
    return epoch


def bench(
    quick: bool = typer.Option(False, "--quick", help="small sizes, about a minute (what the test suite runs)"),
    out: Path = typer.Option(Path("BENCHMARKS.md"), "--out",
                             help="where to write the report; the plots go to benchmarks/ beside it"),
    only: Optional[list[str]] = typer.Option(
        None, "--only", help="run only this phase (repeatable): streams, cost, quality, memory, recovery; the "
        "other sections of an existing report are kept"),
    seeds: Optional[int] = typer.Option(None, "--seeds", min=1,
                                        help="paired days per intensity in the quality phase (default 20)"),
) -> None:
    """Benchmarks: throughput, latency, decision cost, dispatch quality and memory; writes BENCHMARKS.md and plots."""
    import shlex

    _extra_or_exit("bench", "scipy", "matplotlib")
    from streams.bench.suite import SECTIONS, run_bench

    unknown = sorted(set(only or ()) - set(SECTIONS))
    if unknown:
        err_console.print(f"unknown phase {', '.join(unknown)}: choose from {', '.join(SECTIONS)}")
        raise typer.Exit(2)
    settings = _settings()
    run_bench(settings, console, quick=quick, out=out, command="patrol " + shlex.join(sys.argv[1:]),
              sections=tuple(s for s in SECTIONS if not only or s in only), seeds=seeds)


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


def add_tools(app: typer.Typer) -> None:
    for verb in (dashboards, simulate, bench, schemas, catalogue, retention):
        app.command()(verb)
