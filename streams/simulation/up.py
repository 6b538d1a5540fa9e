"""`patrol up`, the main job: infrastructure, a worker, a simulated day (or a small sample), and what became of it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path

import asyncpg
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from processors.intake import Inbound, Limits, Rejected, admit_report
from streams.simulation.day_report import gather, print_report, write_report
from streams.simulation.day_run import play_day
from streams.operations.embedded import broker_name, embedded_infrastructure, free_port, spawn_child, stop_child
from streams.simulation.live_view import Figures, render
from streams.sink.migrate import migrate
from streams.operations.publish import Outgoing, publish, read_lines
from streams.reference import catalogue_text, load_catalogue, load_geography, load_roster
from streams.settings import Settings
from streams.simulation.simulator import ACK_TRANSIT_S, FieldCrew, plan_day, scaled_catalogue
from streams.runtime.topics import INCIDENT_REPORTS, UNIT_EVENTS, ensure_topics


@dataclass(frozen=True)
class Expected:
    """What intake should make of a batch of reports, predicted with the worker's own rules."""

    report_ids: frozenset[str]
    rejections: Counter

    @property
    def dead_letters(self) -> int:
        return sum(self.rejections.values())


def predict(settings: Settings, messages: list[Outgoing]) -> Expected:
    catalogue, geography = load_catalogue(settings), load_geography(settings)
    limits = Limits(max_bytes=settings.max_report_bytes, future_skew=timedelta(seconds=settings.future_skew_s))
    now = datetime.now(timezone.utc)
    ids: set[str] = set()
    rejections: Counter = Counter()
    for i, m in enumerate(messages):
        result = admit_report(Inbound(m.topic, 0, i, m.key, m.value, now), catalogue, geography, limits)
        if isinstance(result, Rejected):
            rejections[result.reason] += 1
        else:
            ids.add(result.item.report.report_id)
    return Expected(frozenset(ids), rejections)


def sample_reports() -> list[Outgoing]:
    text = resources.files("streams.samples").joinpath("reports.jsonl").read_bytes()
    return read_lines(text.splitlines(), topic=INCIDENT_REPORTS)


def district_roster() -> list[Outgoing]:
    """The sample district's units logging on for their shift."""
    return [Outgoing(UNIT_EVENTS, u["unit_id"].encode(), json.dumps(u).encode()) for u in load_roster()]


def start_worker(settings: Settings, log_path: Path):
    """A `patrol worker` child process configured with these settings; it dies with us."""
    return spawn_child(
        [sys.executable, "-m", "streams.cli", "worker"],
        log=log_path, death_signal=signal.SIGTERM, env={**os.environ, **settings.to_env()},
    )


@dataclass(frozen=True)
class Observed:
    statuses: Counter  # incident status -> count, for the published reports
    dead_letters: Counter  # reason -> count, since the run started
    orders: int

    @property
    def incidents(self) -> int:
        return sum(self.statuses.values())

    @property
    def settled(self) -> bool:
        # every incident has been decided on: sent a unit or queued for one
        return self.statuses.get("created", 0) == 0


async def observe(database_url: str, report_ids: frozenset[str], since: datetime) -> Observed:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT status, count(*) AS n FROM incidents WHERE report_id = ANY($1::text[]) GROUP BY status",
            list(report_ids))
        letters = await connection.fetch(
            "SELECT reason, count(*) AS n FROM dead_letters WHERE received_at >= $1 GROUP BY reason", since)
        orders = await connection.fetchval(
            """SELECT count(*) FROM dispatch_orders o JOIN incidents i USING (incident_id)
               WHERE o.kind = 'assign' AND i.report_id = ANY($1::text[])""", list(report_ids))
        return Observed(Counter({r["status"]: r["n"] for r in rows}),
                        Counter({r["reason"]: r["n"] for r in letters}), orders)
    finally:
        await connection.close()


@dataclass(frozen=True)
class DayOptions:
    hours: float = 24.0
    speedup: float = 360.0
    seed: int = 1


def run_up(settings: Settings, console: Console, timeout_s: float = 120.0, day: DayOptions | None = None) -> int:
    """The main job; `day` plays a simulated day, without it a small sample is checked. Returns the exit code."""
    workdir = Path(settings.data_dir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    with embedded_infrastructure(settings, workdir) as live:
        console.print(f"[bold]broker[/] {live.kafka_bootstrap} ({broker_name(settings)})   "
                      f"[bold]database[/] {_redact(live.database_url)}")
        asyncio.run(migrate(live.database_url))
        asyncio.run(ensure_topics(live))
        worker_settings = live.with_overrides(metrics_port=free_port())
        epoch = None
        if day is not None:
            # The compressed day runs the worker on a clock as fast as the day's, from the moment the day starts:
            # the core reckons limits, travel and plausible speeds in simulated seconds as offline, and ticks
            # often enough for them. The catalogue keeps its limits; the acknowledgement limits allow for the
            # answer's hop across the broker (wall seconds, so many simulated ones) and calendars are dropped.
            epoch = datetime.now(timezone.utc) + timedelta(seconds=WORKER_START_S)
            scaled = workdir / "catalogue.simulated.yaml"
            scaled.write_text(scaled_catalogue(catalogue_text(live), 1.0, ACK_TRANSIT_S * day.speedup))
            worker_settings = worker_settings.with_overrides(
                catalogue=scaled, tick_interval_s=max(0.02, min(1.0, 30.0 / day.speedup)),
                clock_rate=day.speedup, clock_epoch=epoch)
        worker = start_worker(worker_settings, workdir / "worker.log")
        console.print(f"worker started (pid {worker.pid}, log {workdir / 'worker.log'})")
        try:
            if day is None:
                return _run_sample(live, console, worker, worker_settings.metrics_port, workdir, timeout_s)
            return _run_day(live, console, worker, worker_settings.metrics_port, workdir, day, epoch)
        finally:
            stop_child(worker, signal.SIGTERM, timeout=30)


def _run_day(live: Settings, console: Console, worker, metrics_port: int, workdir: Path, day: DayOptions,
             epoch: datetime) -> int:
    catalogue, geography = load_catalogue(live), load_geography(live)
    roster = load_roster()
    since = datetime.now(timezone.utc)
    # the day starts when the worker's clock starts running at the day's pace
    start = epoch.astimezone(timezone(timedelta(hours=8)))
    plan = plan_day(catalogue, geography, roster, seed=day.seed, hours=day.hours, start=start)
    if not _ready_by(metrics_port, epoch, worker):
        console.print("[yellow]the worker was not ready when the day began: its first reports wait for it")
    crew = FieldCrew(roster, catalogue, seed=day.seed, speedup=day.speedup)
    reports = sum(1 for m in plan.messages if m.topic == INCIDENT_REPORTS)
    console.print(f"a {day.hours:g}-hour day in the sample district, {day.speedup:g}× faster than the clock: "
                  f"{reports} reports ({plan.count('duplicate')} repeat calls, {plan.count('resend')} resends, "
                  f"{plan.count('malformed')} malformed), {len(roster)} units on their shifts")
    with Live(console=console, refresh_per_second=4, transient=False) as screen:
        def show(p) -> None:
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with code {worker.returncode}; see {workdir / 'worker.log'}")
            screen.update(_live_screen(metrics_port, (
                f"simulated {p.sim_time:%H:%M} ({100 * p.share:.0f}% of the day) · published {p.published} · "
                f"orders answered {p.orders_seen} · unit events {p.unit_events}")))

        try:
            asyncio.run(play_day(live, plan, crew, day.speedup, show, epoch=epoch))
        except RuntimeError as exc:
            console.print(f"[red]{exc}")
            return 1
    # the sink writes within a flush interval; give it a moment before reading the trail
    time.sleep(max(1.0, live.sink_flush_ms / 1000 * 5))
    report = asyncio.run(gather(live.database_url, f"SIM{day.seed}-", since, day.speedup, roster))
    console.print()
    print_report(console, report)
    path = write_report(report, workdir / "report", f"A simulated day in the sample district (seed {day.seed})")
    console.print(f"report and plots written to {path.parent}")
    return 0 if report.incidents > 0 else 1


def _run_sample(live: Settings, console: Console, worker, metrics_port: int, workdir: Path, timeout_s: float) -> int:
    since = datetime.now(timezone.utc)
    roster = district_roster()
    asyncio.run(publish(live, roster))
    console.print(f"{len(roster)} units of the sample district logged on")
    messages = sample_reports()
    expected = predict(live, messages)
    asyncio.run(publish(live, messages))
    console.print(f"published {len(messages)} reports ({len(expected.report_ids)} distinct valid, "
                  f"{expected.dead_letters} invalid, the rest resends)")
    started = time.monotonic()
    with Live(console=console, refresh_per_second=4, transient=False) as screen:
        while True:
            if worker.poll() is not None:
                console.print(f"[red]the worker exited with code {worker.returncode}; see {workdir / 'worker.log'}")
                return 1
            seen = asyncio.run(observe(live.database_url, expected.report_ids, since))
            progress = (f"waiting for the worker to account for every report: incidents "
                        f"{seen.incidents}/{len(expected.report_ids)}, dead letters "
                        f"{sum(seen.dead_letters.values())}/{expected.dead_letters}")
            screen.update(_live_screen(metrics_port, progress))
            if (seen.incidents >= len(expected.report_ids) and seen.settled
                    and sum(seen.dead_letters.values()) >= expected.dead_letters):
                break
            if time.monotonic() - started > timeout_s:
                console.print("[red]timed out waiting for the worker")
                break
            time.sleep(0.5)
    console.print()
    _print_summary(console, expected, seen, time.monotonic() - started)
    complete = seen.incidents == len(expected.report_ids) and seen.dead_letters == expected.rejections
    return 0 if complete else 1


# How long a worker takes to start and join its groups here, with room to spare: the compressed day begins then.
WORKER_START_S = 30.0


def _ready_by(metrics_port: int, epoch: datetime, worker) -> bool:
    """Wait until the worker says it is ready (patrol_worker_ready), then until `epoch`; False if it was not ready
    by then."""
    ready = False
    while datetime.now(timezone.utc) < epoch:
        if not ready and worker.poll() is None:
            try:
                ready = Figures.scrape(metrics_port).total("patrol_worker_ready") >= 1
            except OSError:
                pass
        time.sleep(0.2)
    return ready


def _live_screen(metrics_port: int, progress: str):
    try:
        figures = render(Figures.scrape(metrics_port))
    except OSError:
        figures = Text("(the worker's metrics are not up yet)")
    return Group(figures, Text(progress))


def _print_summary(console: Console, expected: Expected, seen: Observed, seconds: float) -> None:
    table = Table(title=f"What happened to the sample (settled in {seconds:.1f} s)")
    table.add_column("outcome")
    table.add_column("expected", justify="right")
    table.add_column("in PostgreSQL", justify="right")
    table.add_row("incidents created", str(len(expected.report_ids)), str(seen.incidents))
    for status in sorted(s for s in seen.statuses if s != "created"):
        table.add_row(f"  now {status}", "", str(seen.statuses[status]))
    table.add_row("dispatch orders issued", "", str(seen.orders))
    for reason in sorted(set(expected.rejections) | set(seen.dead_letters)):
        table.add_row(f"dead letter: {reason}", str(expected.rejections.get(reason, 0)),
                      str(seen.dead_letters.get(reason, 0)))
    console.print(table)


def _redact(url: str | None) -> str:
    if not url or "@" not in url:
        return str(url)
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    return f"{scheme}://{credentials.split(':')[0]}@{host}"
