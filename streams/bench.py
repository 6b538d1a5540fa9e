"""`patrol bench`: how fast the platform is, how much it costs, and how good its decisions are — measured, in one run.

Five benchmarks, each next to a baseline measured in the same run:

1. **Throughput** — reports per second through intake → district core → orders →
   PostgreSQL with one real worker process (embedded Tansu broker, embedded
   PostgreSQL), next to a raw aiokafka consume→produce pipe on the same broker.
2. **Latency** — report published → its dispatch order consumed, at fixed offered
   rates, next to the raw pipe's latency at the same rates; the worker's own
   histogram (intake → order published) splits the time between hops and work.
3. **Decision cost** — in-process time per assignment as the district grows from
   100 to 50,000 units, next to a brute-force scan of every unit.
4. **Dispatch quality** — a simulated day played offline and deterministically
   (discrete-event simulation, no Kafka) through the district core with our
   policy and with closest-idle-unit, next to a hindsight assignment that knows
   the whole day (scipy's linear_sum_assignment over time windows).
5. **Memory** — bytes per unit, per open and per closed incident of a district
   core, and the real worker's resident memory.

The benchmarks always start their own embedded broker and database (never the
configured ones: a benchmark must not publish made-up reports to a real
`incident.reports`). `patrol bench` writes BENCHMARKS.md and PNG plots;
`--quick` runs every part at small sizes (for the test suite).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import heapq
import json
import logging
import math
import os
import platform
import random
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from processors.catalogue import Catalogue, Category
from processors.district import CANDIDATES_PER_PLACE, CLOSED_KEPT, CLOSEST_IDLE, DispatchPolicy, DistrictCore, incident_id_for
from processors.geography import Geography, distance_m
from processors.intake import Inbound, Limits, Rejected, admit_report, admit_unit_event
from processors.messages import (
    DispatchOrder,
    Escalation,
    IncidentEvent,
    IncidentReport,
    LogOff,
    LogOn,
    WorkItem,
    unit_event_adapter,
)
from processors.units import DETOUR_FACTOR, SPEED_M_S, Unit
from streams.bench_brokers import BrokerRun, broker_label, broker_targets, brokers_to_run, side_by_side
from streams.bench_profile import Profile, Sampler, profile_markdown
from streams.bench_recovery import RecoveryBench, recovery_benchmark, recovery_markdown, recovery_targets
from streams.consumer_loop import partitions_of
from streams.settings import Settings
from streams.simulator import CrewHabits, DayPlan, plan_day

DISTRICT = "JINJIANG"
T0 = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)


# ============================================================================ sizes


@dataclass(frozen=True)
class Sizes:
    """How big each benchmark runs. FULL is what BENCHMARKS.md records; QUICK is for the test suite."""

    stream_units: int  # units logged on for the Kafka benchmarks
    throughput_reports: int
    pipe_records: int
    rates: tuple[int, ...]  # offered reports per second for the latency benchmark
    rate_seconds: float  # how long each offered rate is held
    drain_seconds: float  # how long to wait for a rate's last orders (and again, before the next rate)
    pipe_rate_seconds: float  # the raw pipe's latency at the same rates, held this long
    cost_units: tuple[int, ...]
    cost_samples: int
    day_hours: float
    day_intensities: tuple[float, ...]  # the sample day (1×) and a busier one
    memory_units: int
    memory_incidents: int
    recovery_days: tuple[float, ...] = (1.0, 30.0)  # ages of the work log a takeover meets
    recovery_baseline: bool = True  # each age once more without a snapshot (the full replay)
    growth_rate: int = 1000  # the raw pipe's offered rate while the broker's topics fill up
    growth_seconds: float = 5.0  # each block held this long
    growth_blocks: int = 5


FULL = Sizes(stream_units=5000, throughput_reports=4000, pipe_records=30000, rates=(100, 500, 1000),
             rate_seconds=10.0, drain_seconds=60.0, pipe_rate_seconds=5.0, cost_units=(100, 1000, 10000, 50000), cost_samples=1000,
             day_hours=24.0, day_intensities=(1.0, 2.0), memory_units=4000, memory_incidents=2000)
QUICK = Sizes(stream_units=600, throughput_reports=300, pipe_records=2000, rates=(50, 100), rate_seconds=2.0, drain_seconds=20.0,
              pipe_rate_seconds=1.0, cost_units=(100, 1000, 3000), cost_samples=60, day_hours=4.0,
              day_intensities=(1.0,), memory_units=2000, memory_incidents=1000, growth_rate=200, growth_seconds=1.0,
              growth_blocks=2, recovery_days=(0.05,), recovery_baseline=False)

# Targets of issue 6, recorded next to what was measured.
TARGET_THROUGHPUT_RATIO = 0.5
TARGET_P99_RATE = 500
TARGET_P99_MS = 50.0


# ============================================================================ results


@dataclass
class Machine:
    cpu: str
    cores: int
    memory_gb: float
    python: str
    system: str
    date: str

    @classmethod
    def describe(cls) -> "Machine":
        cpu = "unknown"
        with contextlib.suppress(OSError):
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        memory = 0.0
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemTotal:"):
                    memory = int(line.split()[1]) / 1024 / 1024
        return cls(cpu=cpu, cores=os.cpu_count() or 0, memory_gb=round(memory, 1),
                   python=f"{platform.python_implementation()} {platform.python_version()}",
                   system=f"{platform.system()} {platform.release()} ({platform.machine()})",
                   date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


@dataclass
class Throughput:
    reports: int
    seconds: float
    merged: int  # reports merged into another incident (a row of their own is not expected)
    pipe_records: int
    pipe_seconds: float
    orders: int = 0  # orders read for the burst (the district core's decisions)
    orders_seconds: float = float("nan")  # until the last of them was read
    worker_cores: float = float("nan")  # CPU the worker used during the burst, in cores
    machine_cores: float = float("nan")  # CPU the whole machine used meanwhile (all processes), in cores
    cores: dict[str, float] = field(default_factory=dict)  # the same by role (CpuWatch.cores)
    broker_records: int = 0  # records the broker took in on every topic during the burst
    pipe_cpu_s: float = float("nan")  # CPU seconds the raw pipe used to move its records
    profile: Profile | None = None  # where the worker's CPU went during the burst (py-spy)

    @property
    def worker_ms_per_report(self) -> float:
        return 1000 * _ratio(self.worker_cores * self.seconds, self.reports)

    @property
    def floor_ms_per_report(self) -> float:
        """The raw pipe's CPU per record it moved × the records the broker took in per report: what moving a
        report's records costs a Python Kafka client that does nothing else."""
        per_record = 1000 * _ratio(self.pipe_cpu_s, self.pipe_records)
        return per_record * _ratio(self.broker_records, self.reports)

    @property
    def orders_rate(self) -> float:
        return _ratio(self.orders, self.orders_seconds)

    @property
    def rate(self) -> float:
        return _ratio(self.reports, self.seconds)

    @property
    def pipe_rate(self) -> float:
        return _ratio(self.pipe_records, self.pipe_seconds)

    @property
    def ratio(self) -> float:
        return _ratio(self.rate, self.pipe_rate)


def _ratio(part: float, whole: float) -> float:
    """part / whole, 0 when there is nothing (or nothing measurable) to divide by."""
    return part / whole if whole > 0 else 0.0


@dataclass
class LatencyStep:
    rate: int  # offered reports per second
    seconds: float  # how long it was held
    sent: int
    send_seconds: float  # how long sending actually took (the generator's own pace)
    latencies_ms: list[float]  # one per report whose order was read
    merged: int = 0  # merged into an earlier incident: no order expected
    unanswered: int = 0  # no order within the wait
    worker_ms: dict[str, float] = field(default_factory=dict)  # the worker's own histogram: p50/p99 (bucket bounds)
    # the worker's histogram of a report's wait from its publication to intake: p50/p99
    intake_ms: dict[str, float] = field(default_factory=dict)
    pipe_ms: list[float] = field(default_factory=list)  # the raw pipe at the same offered rate
    skipped: str | None = None  # why this rate was not run
    worker_cores: float = float("nan")  # CPU the worker used from the first report to the last order, in cores
    machine_cores: float = float("nan")  # the whole machine meanwhile
    cores: dict[str, float] = field(default_factory=dict)  # by role (CpuWatch.cores)
    # records the broker took in on every topic from the first report to the last order (all clients)
    broker_records: int = 0

    @property
    def broker_records_per_s(self) -> float:
        return _ratio(self.broker_records, self.send_seconds)

    @property
    def achieved_rate(self) -> float:
        return _ratio(self.sent, self.send_seconds)

    def quantile(self, q: float, values: list[float] | None = None) -> float:
        return _quantile(self.latencies_ms if values is None else values, q)


@dataclass
class CostRow:
    units: int
    samples: int
    apply_us: list[float]  # the whole report → dispatch apply call
    search_us: list[float]  # the grid search alone (what the core's ranking does)
    brute_us: list[float]  # baseline: a scan of every unit for the same query

    def mean(self, what: str) -> float:
        values = getattr(self, what)
        return sum(values) / len(values) if values else 0.0


@dataclass
class DecisionCost:
    rows: list[CostRow]

    def exponent(self, what: str = "apply_us") -> float:
        """Slope of log(mean time) over log(units): 1 is linear growth, below 1 sub-linear."""
        return _slope([math.log(r.units) for r in self.rows], [math.log(max(r.mean(what), 1e-9)) for r in self.rows])

    def tail_exponent(self, what: str = "apply_us") -> float:
        """The same slope between the two largest sizes, where a fixed overhead no longer hides the growth."""
        rows = self.rows[-2:]
        return _slope([math.log(r.units) for r in rows], [math.log(max(r.mean(what), 1e-9)) for r in rows])


@dataclass
class QualityRow:
    policy: str
    incidents: int
    reached: int
    arrival_s: list[float]  # report → first unit on scene, per reached incident
    wait_s: list[float]  # report → first dispatch, per dispatched incident
    late_sla: int  # the core's rule: someone on scene within arrive_s of the first dispatch
    late_report: int  # the citizen's view: within arrive_s of the report
    judged: int  # incidents whose arrive limit has run its course (reached, or limit passed)
    p1: int
    p1_within_15min: int
    workload_cv: float  # coefficient of variation across streets of incidents handled per unit
    escalations: Counter = field(default_factory=Counter)
    reassigned: int = 0

    @property
    def mean_arrival_s(self) -> float:
        return sum(self.arrival_s) / len(self.arrival_s) if self.arrival_s else float("nan")

    @property
    def mean_wait_s(self) -> float:
        return sum(self.wait_s) / len(self.wait_s) if self.wait_s else float("nan")

    @property
    def p90_arrival_s(self) -> float:
        return _quantile(self.arrival_s, 0.90)

    @property
    def late_share(self) -> float:
        return self.late_sla / self.judged if self.judged else 0.0

    @property
    def late_report_share(self) -> float:
        return self.late_report / self.judged if self.judged else 0.0


@dataclass
class QualityDay:
    intensity: float
    hours: float
    seed: int
    reports: int  # distinct matters reported (first reports), before dedup
    messages: int  # every message of the day's plan
    units: int
    rows: list[QualityRow]
    sweep: list["SweepRow"] = field(default_factory=list)

    def row(self, policy: str) -> QualityRow:
        return next(r for r in self.rows if r.policy == policy)


@dataclass
class Memory:
    units: int
    incidents: int
    traced: dict[str, float]  # bytes per unit / open incident / closed incident (tracemalloc)
    resident: dict[str, float]  # the same from VmRSS deltas
    worker: dict[str, float] = field(default_factory=dict)  # the real worker process (streams benchmark)


@dataclass
class BenchResult:
    command: str
    quick: bool
    machine: Machine
    throughput: Throughput | None = None
    latency: list[LatencyStep] = field(default_factory=list)
    cost: DecisionCost | None = None
    quality: list[QualityDay] = field(default_factory=list)
    memory: Memory | None = None
    recovery: RecoveryBench | None = None
    growth: list["GrowthStep"] = field(default_factory=list)  # the embedded broker as its topics fill up
    # the streams phases on each embedded broker (Kafka first where it runs); the fields above are the first's
    brokers: list[BrokerRun] = field(default_factory=list)
    # the raw pipe alone at the record volume the report path made at `floor_for` reports/s, on a new broker
    floor: "GrowthStep | None" = None
    floor_for: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)

    def step(self, rate: int) -> LatencyStep | None:
        return next((s for s in self.latency if s.rate == rate), None)

    def targets(self) -> list[tuple[str, str, bool | None]]:
        """(target, what was measured, met: True / False / None when not measured in this run)."""
        out: list[tuple[str, str, bool | None]] = []
        if self.throughput is not None:
            t = self.throughput
            out.append((f"throughput ≥ {TARGET_THROUGHPUT_RATIO:g} × raw pipe",
                        f"{t.ratio:.3f} × ({t.rate:,.0f} vs {t.pipe_rate:,.0f} records/s)",
                        t.ratio >= TARGET_THROUGHPUT_RATIO))
        step = self.step(TARGET_P99_RATE)
        if step is not None and step.skipped:
            out.append((f"p99 decision latency < {TARGET_P99_MS:g} ms at {TARGET_P99_RATE}/s", step.skipped, False))
        elif step is not None and step.latencies_ms:
            p99 = step.quantile(0.99)
            own = step.worker_ms.get("p99", float("nan"))
            out.append((f"p99 decision latency < {TARGET_P99_MS:g} ms at {TARGET_P99_RATE}/s",
                        f"p99 {p99:,.1f} ms, report published → order read (the worker's own intake → order "
                        f"published: p99 {_ms(own)} ms)"
                        + (f"; {step.unanswered:,} of {step.sent:,} reports got no order in the time waited"
                           if step.unanswered else ""),
                        p99 < TARGET_P99_MS and step.unanswered == 0))
        else:
            out.append((f"p99 decision latency < {TARGET_P99_MS:g} ms at {TARGET_P99_RATE}/s",
                        "not measured at this rate in this run", None))
        if self.brokers:
            out += broker_targets(self.brokers[0])
        if self.cost is not None:
            e = self.cost.exponent()
            tail = self.cost.tail_exponent()
            out.append(("assignment time grows sub-linearly with units",
                        f"exponent {e:.2f} over all sizes, {tail:.2f} between the two largest", max(e, tail) < 1.0))
        for day in self.quality:
            ours, closest = day.row("ours"), day.row("closest-idle")
            out.append((f"ours better than closest-idle on late arrivals ({day.intensity:g}× day)",
                        f"late {100 * ours.late_share:.1f} % vs {100 * closest.late_share:.1f} % "
                        f"(from the report: {100 * ours.late_report_share:.1f} % vs "
                        f"{100 * closest.late_report_share:.1f} %)",
                        ours.late_sla < closest.late_sla))
        if self.recovery is not None:
            out += recovery_targets(self.recovery)
        return out


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    # linear interpolation between closest ranks (numpy's default)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _slope(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    if n < 2:
        return float("nan")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else float("nan")


# ============================================================================ progress


class Steps:
    """Progress bars for the long parts (rich.progress), or nothing when quiet."""

    def __init__(self, console: Console):
        self.console = console
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, transient=True)

    def __enter__(self) -> "Steps":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    @contextlib.contextmanager
    def task(self, description: str, total: float) -> Iterator:
        task_id = self.progress.add_task(description, total=total)

        def advance(n: float = 1.0, *, to: float | None = None) -> None:
            if to is not None:
                self.progress.update(task_id, completed=to)
            else:
                self.progress.advance(task_id, n)

        try:
            yield advance
        finally:
            self.progress.remove_task(task_id)


# ============================================================================ the reference data


def reference(settings: Settings) -> tuple[Catalogue, Geography, list[dict]]:
    from streams.reference import load_catalogue, load_geography

    roster = [json.loads(line) for line in
              resources.files("processors.data").joinpath("roster.jsonl").read_text().splitlines() if line.strip()]
    return load_catalogue(settings), load_geography(settings), roster


def _bounds(geography: Geography, district: str = DISTRICT) -> tuple[float, float, float, float]:
    streets = [s for s in geography.streets if s.district == district]
    return (min(s.polygon.bounds[0] for s in streets), min(s.polygon.bounds[1] for s in streets),
            max(s.polygon.bounds[2] for s in streets), max(s.polygon.bounds[3] for s in streets))


def random_points(geography: Geography, n: int, rnd: random.Random, district: str = DISTRICT) -> list[tuple[float, float, str]]:
    """`n` points spread uniformly over the district's streets: (lat, lon, street)."""
    minx, miny, maxx, maxy = _bounds(geography, district)
    out = []
    while len(out) < n:
        lon, lat = rnd.uniform(minx, maxx), rnd.uniform(miny, maxy)
        street = geography.locate(lat, lon)
        if street is not None and street.district == district:
            out.append((round(lat, 6), round(lon, 6), street.street))
    return out


def lattice(geography: Geography, spacing_m: float, district: str = DISTRICT) -> list[tuple[float, float, str]]:
    """Points of a square lattice inside the district: reports at different points never merge as duplicates."""
    minx, miny, maxx, maxy = _bounds(geography, district)
    dlat = spacing_m / 111_000
    dlon = spacing_m / (111_000 * math.cos(math.radians((miny + maxy) / 2)))
    out = []
    lat = miny + dlat / 2
    while lat < maxy:
        lon = minx + dlon / 2
        while lon < maxx:
            street = geography.locate(lat, lon)
            if street is not None and street.district == district:
                out.append((round(lat, 6), round(lon, 6), street.street))
            lon += dlon
        lat += dlat
    return out


def bench_categories(catalogue: Catalogue, max_radius_m: float) -> list[Category]:
    """Single-agency categories with a small dedup radius: each report is one incident and one order."""
    return [c for c in catalogue.categories if len(c.agencies) == 1 and c.dedup.radius_m <= max_radius_m]


def generated_units(geography: Geography, n: int, rnd: random.Random, prefix: str,
                    agencies: tuple[str, ...] = ("police", "traffic", "city_management"),
                    weights: tuple[float, ...] | None = None) -> list[dict]:
    """A brigade of `n` officers spread over the district, modes in turn: log_on fields per unit.

    Agencies go in turn, or in proportion to `weights` (e.g. to what the reports will ask of each)."""
    modes = ("car", "bike", "foot")
    if weights is None:
        agency_of = [agencies[i % len(agencies)] for i in range(n)]
    else:
        total = sum(weights)
        counts = [math.floor(n * w / total) for w in weights]
        for k in range(n - sum(counts)):
            counts[k % len(counts)] += 1
        agency_of = [a for a, c in zip(agencies, counts) for _ in range(c)]
        rnd.shuffle(agency_of)
    return [{"unit_id": f"{prefix}{i:05d}", "agency": agency_of[i], "kind": "officer",
             "district": DISTRICT, "home_street": street, "mode": modes[(i // len(agencies)) % len(modes)],
             "delegations": [], "lat": lat, "lon": lon}
            for i, (lat, lon, street) in enumerate(random_points(geography, n, rnd))]


# ============================================================================ 3. decision cost


def _log_on_item(unit: dict, at: datetime, n: int) -> WorkItem:
    event = unit_event_adapter.validate_python({"schema_version": 1, "event_id": f"bench-on-{n}", "at": at,
                                                "type": "log_on", **unit})
    return WorkItem(kind="unit_event", district=DISTRICT, at=at, unit_event=event)


def _status_item(unit_id: str, type_: str, order_id: str, at: datetime, n: int) -> WorkItem:
    event = unit_event_adapter.validate_python({"schema_version": 1, "event_id": f"bench-st-{n}", "unit_id": unit_id,
                                                "at": at, "type": type_, "order_id": order_id})
    return WorkItem(kind="unit_event", district=DISTRICT, at=at, unit_event=event)


def _report_item(report_id: str, code: str, lat: float, lon: float, street: str, at: datetime) -> WorkItem:
    report = IncidentReport(schema_version=1, report_id=report_id, source="sensor", category=code, lat=lat, lon=lon,
                            reported_at=at)
    return WorkItem(kind="report", district=DISTRICT, at=at, street=street, report=report)


def decision_cost(catalogue: Catalogue, geography: Geography, sizes: tuple[int, ...], samples: int,
                  steps: Steps | None = None, seed: int = 7) -> DecisionCost:
    """Time per assignment in a district of N free units, the core fed directly.

    Each sample is one report applied to the core (timed) and then resolved by its unit
    (not timed), so every sample meets the same district: N free units, no backlog.
    The same query is also answered by a scan of every unit (the baseline the grid avoids).
    """
    categories = bench_categories(catalogue, 200.0)
    rows = []
    for n in sizes:
        rnd = random.Random(seed)
        core = DistrictCore(DISTRICT, catalogue)
        at = T0
        units = generated_units(geography, n, rnd, "C")
        points = random_points(geography, samples, rnd)
        apply_us, search_us, brute_us = [], [], []
        with (steps.task(f"decision cost: {n:,} units", n + samples) if steps else contextlib.nullcontext()) as advance:
            for i, unit in enumerate(units):
                core.apply(_log_on_item(unit, at, i))
                if advance and i % 500 == 0:
                    advance(to=i)
            gc.collect()
            for j, (lat, lon, street) in enumerate(points):
                at += timedelta(seconds=1)
                category = categories[j % len(categories)]
                item = _report_item(f"C{n}-{j}", category.code, lat, lon, street, at)
                search_us.append(_time_search(core, category, lat, lon))
                if j < BRUTE_SAMPLES:
                    brute_us.append(_time_brute(core, category, lat, lon))
                started = time.perf_counter()
                out = core.apply(item)
                apply_us.append((time.perf_counter() - started) * 1e6)
                for order in (m for m in out if isinstance(m, DispatchOrder) and m.kind == "assign"):
                    core.apply(_status_item(order.unit_id, "resolved", order.order_id, at, j))
                if advance:
                    advance(to=n + j + 1)
        rows.append(CostRow(units=n, samples=samples, apply_us=apply_us, search_us=search_us, brute_us=brute_us))
    return DecisionCost(rows)


# the full scan is the slow baseline; this many samples of it per size are plenty
BRUTE_SAMPLES = 200


def _eligible_eta(core: DistrictCore, category: Category, agency: str):
    """The core's ranking test and price: (eligible(unit_id), eta(unit_id, distance_m))."""
    units = core.state.units

    def eligible(unit_id: str) -> bool:
        unit = units[unit_id]
        return unit.free and unit.may_act_for(category, agency)

    def eta(unit_id: str, d: float) -> float:
        return units[unit_id].eta_s(d)

    return eligible, eta


def _time_search(core: DistrictCore, category: Category, lat: float, lon: float) -> float:
    """The query the core's ranking makes: its free-unit index, for the lead agency's place."""
    started = time.perf_counter()
    core.candidates(category, category.agencies[0], lat, lon)
    return (time.perf_counter() - started) * 1e6


def _time_brute(core: DistrictCore, category: Category, lat: float, lon: float) -> float:
    """Baseline: look at every unit of the district for the same query."""
    eligible, eta = _eligible_eta(core, category, category.agencies[0])
    started = time.perf_counter()
    found = []
    for unit in core.state.units.values():
        if eligible(unit.unit_id):
            found.append((eta(unit.unit_id, distance_m(lat, lon, unit.lat, unit.lon)), unit.unit_id))
    heapq.nsmallest(CANDIDATES_PER_PLACE, found)
    return (time.perf_counter() - started) * 1e6


# ============================================================================ 4. dispatch quality


@dataclass
class _SimUnit:
    unit_id: str
    mode: str
    lat: float
    lon: float
    on_duty: bool = False


class SimCrew:
    """The field units in simulated time, behaving as `streams.simulator.FieldCrew`'s officers do.

    Every random draw is keyed by what it is about (the order id, the incident), not
    by the order of play, so both policies meet the same officers: the n-th order of
    an incident is acknowledged after the same delay, or declined, under either policy,
    and an incident takes as long to handle whoever handles it. Travel is the crow-fly
    distance × the core's detour factor over the unit's mode speed, from where the unit
    really is (it reports its position when it reaches a scene).
    """

    def __init__(self, catalogue: Catalogue, seed: int, habits: CrewHabits = CrewHabits()):
        self.catalogue = catalogue
        self.seed = seed
        self.habits = habits
        self.units: dict[str, _SimUnit] = {}
        self.cancelled: set[str] = set()
        self.ack_pending: dict[str, float] = {}  # order id -> when its acknowledgement is due to be sent

    def draws(self, order_id: str) -> random.Random:
        return random.Random(f"{self.seed}:{order_id}")

    def handle_s(self, incident_id: str, category: Category | None) -> float:
        return self.habits.handle_s(random.Random(f"{self.seed}:handle:{incident_id}"), category)

    def ack_s(self, order_id: str) -> float:
        return self.habits.ack_s(self.draws(order_id))

    def travel_s(self, unit: _SimUnit, lat: float, lon: float) -> float:
        return distance_m(unit.lat, unit.lon, lat, lon) * DETOUR_FACTOR / SPEED_M_S[unit.mode]

    def on_order(self, order: DispatchOrder, now: float) -> list[tuple[float, str, dict]]:
        """Unit events (at, unit_id, fields) in answer to an order read at simulated second `now`."""
        if order.kind == "cancel":
            self.cancelled.add(order.order_id)
            ack_at = self.ack_pending.pop(order.order_id, None)
            if ack_at is not None and ack_at > now:
                # taken off the task before answering (too slow to acknowledge, or pre-empted): the officer
                # sees the cancellation when picking up the radio and reports ready for the next one
                return [(ack_at, order.unit_id, {"type": "available"})]
            return []
        unit = self.units.get(order.unit_id)
        if unit is None:
            return []
        h = self.habits
        rnd = self.draws(order.order_id)
        ack = h.ack_s(rnd)  # the same draw as ack_s()
        never, decline, drop = rnd.random(), rnd.random(), rnd.random()
        oid = order.order_id
        if never < h.never_ack:
            # the radio is off; the officer reports back once the order has surely been taken away
            ack_by = (order.ack_by - order.issued_at).total_seconds() if order.ack_by else 0.0
            return [(now + max(h.silent_for_s, ack_by + 60.0), unit.unit_id, {"type": "available"})]
        if decline < h.decline:
            return [(now + ack, unit.unit_id, {"type": "decline", "order_id": oid})]
        self.ack_pending[oid] = now + ack
        travel = self.travel_s(unit, order.lat, order.lon)
        out = [(now + ack, unit.unit_id, {"type": "ack", "order_id": oid}),
               (now + ack + 5, unit.unit_id, {"type": "en_route", "order_id": oid})]
        if drop < h.drop_out:
            out.append((now + ack + 5 + travel / 2, unit.unit_id, {"type": "log_off"}))
            return out
        arrive = now + ack + 5 + travel
        out.append((arrive, unit.unit_id, {"type": "location", "lat": order.lat, "lon": order.lon}))
        out.append((arrive, unit.unit_id, {"type": "on_scene", "order_id": oid}))
        category = self.catalogue.get(order.category)
        out.append((arrive + self.handle_s(order.incident_id, category), unit.unit_id,
                    {"type": "resolved", "order_id": oid, "outcome": "handled"}))
        return out

    def still_wanted(self, unit_id: str, event: dict) -> bool:
        order_id = event.get("order_id")
        return not (order_id is not None and order_id in self.cancelled)

    def happened(self, unit_id: str, event: dict) -> None:
        if event["type"] == "ack":
            self.ack_pending.pop(event["order_id"], None)
        unit = self.units.get(unit_id)
        if unit is not None and event["type"] == "location":
            unit.lat, unit.lon = event["lat"], event["lon"]


@dataclass
class _Case:
    """What became of one incident in a simulated day."""

    incident_id: str
    category: Category
    street: str
    lat: float
    lon: float
    created_s: float
    dispatched_s: float | None = None
    arrived_s: float | None = None
    arrive_on_time: bool | None = None


@dataclass
class DayRun:
    policy: str
    cases: dict[str, _Case]
    handled: Counter  # unit_id -> incidents resolved
    escalations: Counter
    reassigned: int
    end_s: float


def _sim_seconds(start: datetime, at: datetime) -> float:
    return (at - start).total_seconds()


def simulate_day(catalogue: Catalogue, geography: Geography, plan: DayPlan, policy: DispatchPolicy, name: str, *,
                 seed: int, tick_s: float = 5.0, drain_s: float = 7200.0,
                 advance=None) -> DayRun:
    """Play `plan` through a district core in simulated time: the day's messages, the crew's answers, clock ticks."""
    core = DistrictCore(DISTRICT, catalogue, policy)
    crew = SimCrew(catalogue, seed)
    limits = Limits()
    start = plan.start
    end_s = plan.hours * 3600 + drain_s
    heap: list[tuple[float, int, str, object]] = []
    seq = 0
    for m in plan.messages:
        seq += 1
        heap.append((m.at_s, seq, "plan", m))
    heapq.heapify(heap)
    unit_district: dict[str, str | None] = {}
    cases: dict[str, _Case] = {}
    handled: Counter = Counter()
    escalations: Counter = Counter()
    reassigned = 0
    next_tick = tick_s
    offset = 0
    last_progress = 0.0

    def take(outputs: list, now: float) -> None:
        nonlocal seq, reassigned
        for out in outputs:
            if isinstance(out, DispatchOrder):
                for at, unit_id, fields in crew.on_order(out, now):
                    seq += 1
                    heapq.heappush(heap, (at, seq, "crew", (unit_id, fields)))
            elif isinstance(out, IncidentEvent):
                data = out.data
                t = _sim_seconds(start, out.at)
                if out.type == "created":
                    category = catalogue.get(data["category"])
                    cases[out.incident_id] = _Case(out.incident_id, category, data["street"], data["lat"],
                                                   data["lon"], t)
                    continue
                case = cases.get(out.incident_id)
                if case is None:
                    continue
                if out.type == "dispatched" and case.dispatched_s is None:
                    case.dispatched_s = t
                elif out.type == "on_scene" and case.arrived_s is None:
                    case.arrived_s = t
                    case.arrive_on_time = data.get("arrive_on_time")
                elif out.type == "resolved":
                    handled[data["unit_id"]] += 1
                elif out.type == "reassigned":
                    reassigned += 1
            elif isinstance(out, Escalation):
                escalations[(out.level, out.reason)] += 1

    while True:
        t_next = heap[0][0] if heap else math.inf
        if next_tick <= t_next:
            if next_tick > end_s:
                break
            now = next_tick
            next_tick += tick_s
            take(core.apply(WorkItem(kind="tick", district=DISTRICT, at=start + timedelta(seconds=now))), now)
        else:
            now, _, kind, payload = heapq.heappop(heap)
            if now > end_s:
                break
            at = start + timedelta(seconds=now)
            offset += 1
            if kind == "plan":
                item = _admit(payload, at, offset, catalogue, geography, limits, unit_district, crew)
            else:
                unit_id, fields = payload
                if not crew.still_wanted(unit_id, fields):
                    continue
                crew.happened(unit_id, fields)
                event = unit_event_adapter.validate_python({
                    "schema_version": 1, "event_id": f"sim-{offset}", "unit_id": unit_id, "at": at, **fields})
                item = WorkItem(kind="unit_event", district=DISTRICT, at=at, unit_event=event)
            if item is not None:
                take(core.apply(item), now)
        if advance is not None and now - last_progress >= 600:
            advance(to=min(now, end_s))
            last_progress = now
    return DayRun(name, cases, handled, escalations, reassigned, end_s)


def _admit(m, at: datetime, offset: int, catalogue, geography, limits, unit_district, crew: SimCrew) -> WorkItem | None:
    """A planned message through the real intake, as the worker would admit it."""
    record = Inbound(m.topic, 0, offset, m.key.encode() if m.key else None, m.value, at)
    if m.topic == "incident.reports":
        result = admit_report(record, catalogue, geography, limits)
        return None if isinstance(result, Rejected) else result.item
    key = m.key or ""
    result = admit_unit_event(record, geography, limits, unit_district.get(key))
    if isinstance(result, Rejected):
        return None
    event = result.unit_event
    if isinstance(event, LogOn):
        unit_district[key] = event.district
        crew.units[event.unit_id] = _SimUnit(event.unit_id, event.mode, event.lat, event.lon, True)
    elif isinstance(event, LogOff):
        unit_district[key] = None
        if event.unit_id in crew.units:
            crew.units[event.unit_id].on_duty = False
    return result


def _workload_cv(handled: Counter, roster: list[dict]) -> float:
    """Coefficient of variation across streets of incidents handled per unit of the street."""
    units_of: Counter = Counter(u["home_street"] for u in roster)
    street_of = {u["unit_id"]: u["home_street"] for u in roster}
    per_street: Counter = Counter()
    for unit_id, n in handled.items():
        per_street[street_of.get(unit_id, "?")] += n
    values = [per_street[s] / units_of[s] for s in units_of]
    if not values:
        return float("nan")
    mean = sum(values) / len(values)
    if mean == 0:
        return 0.0
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)) / mean


def judge(run: DayRun, catalogue: Catalogue, roster: list[dict], start: datetime) -> QualityRow:
    """The figures of a played day: time to arrival, late arrivals (the core's SLA rule and the citizen's), spread."""
    arrival, waits, late_sla, late_report, judged, p1, p1_fast, reached = [], [], 0, 0, 0, 0, 0, 0
    for case in run.cases.values():
        if case.dispatched_s is not None:
            waits.append(case.dispatched_s - case.created_s)
        category = case.category
        created = start + timedelta(seconds=case.created_s)
        from_report = _sim_seconds(start, catalogue.deadline(category, created, category.sla.arrive_s))
        if case.dispatched_s is not None:
            dispatched = start + timedelta(seconds=case.dispatched_s)
            by_sla = _sim_seconds(start, catalogue.deadline(category, dispatched, category.sla.arrive_s))
        else:
            by_sla = from_report  # nobody sent: the waiting clock (arrive_s) is what runs out
        if category.priority == 1:
            p1 += 1
            if case.arrived_s is not None and case.arrived_s - case.created_s <= 900:
                p1_fast += 1
        if case.arrived_s is not None:
            reached += 1
            arrival.append(case.arrived_s - case.created_s)
            judged += 1
            late_sla += case.arrived_s > by_sla
            late_report += case.arrived_s > from_report
        elif min(by_sla, from_report) <= run.end_s:
            # never reached while its limit ran out within the observed time: late
            judged += 1
            late_sla += by_sla <= run.end_s
            late_report += from_report <= run.end_s
    return QualityRow(policy=run.policy, incidents=len(run.cases), reached=reached, arrival_s=arrival, wait_s=waits,
                      late_sla=late_sla, late_report=late_report, judged=judged, p1=p1, p1_within_15min=p1_fast,
                      workload_cv=_workload_cv(run.handled, roster), escalations=run.escalations,
                      reassigned=run.reassigned)


# -------------------------------------------------------------------- the hindsight bound


def _shifts(plan: DayPlan, end_s: float) -> dict[str, list[tuple[float, float]]]:
    """unit_id -> on-duty intervals, from the day's log_on / log_off messages."""
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    on_since: dict[str, float] = {}
    for m in plan.messages:
        if m.topic != "unit.events" or m.what not in ("log_on", "log_off"):
            continue
        if m.what == "log_on":
            on_since.setdefault(m.key, m.at_s)
        elif m.key in on_since:
            spans[m.key].append((on_since.pop(m.key), m.at_s))
    for unit_id, since in on_since.items():
        spans[unit_id].append((since, end_s))
    return spans


def hindsight(catalogue: Catalogue, roster: list[dict], plan: DayPlan, reference_run: DayRun, crew_seed: int, *,
              window_s: float = 300.0, late_penalty_s: float = 3600.0, advance=None) -> DayRun:
    """An offline assignment that knows the whole day: who is on duty when, where every incident will be,
    how long each will take to handle. Every `window_s` the incidents of the window (and any left over)
    are matched to units by scipy's linear_sum_assignment, minimising time to arrival plus a penalty for
    each arrival later than the category's arrive limit; a unit still busy may be booked for the moment
    it comes free. No officer declines, ignores an order or walks away, and nothing is merged differently:
    the incidents are those the core created with our policy. A reference point, not a strict lower bound
    (the matching is optimal within each window, not over the whole day)."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    crew = SimCrew(catalogue, crew_seed)
    end_s = reference_run.end_s
    profiles = {u["unit_id"]: u for u in roster}
    spans = _shifts(plan, end_s)
    units = {uid: Unit(unit_id=uid, agency=p["agency"], kind=p["kind"], home_street=p["home_street"], mode=p["mode"],
                       delegations=frozenset(p.get("delegations") or ()), lat=p["lat"], lon=p["lon"])
             for uid, p in profiles.items() if uid in spans}
    free_at = {uid: 0.0 for uid in units}
    sim_units = {uid: _SimUnit(uid, u.mode, u.lat, u.lon, True) for uid, u in units.items()}
    # every agency place of every incident is a job
    jobs = sorted(((case.created_s, case.incident_id, k, agency)
                   for case in reference_run.cases.values()
                   for k, agency in enumerate(case.category.agencies)), key=lambda j: (j[0], j[1], j[2]))
    cases = {cid: _Case(c.incident_id, c.category, c.street, c.lat, c.lon, c.created_s)
             for cid, c in reference_run.cases.items()}
    handled: Counter = Counter()
    backlog: list[tuple] = []
    i = 0
    window = 0.0
    big = 1e12
    while window < end_s:
        window_end = window + window_s
        while i < len(jobs) and jobs[i][0] < window_end:
            backlog.append(jobs[i])
            i += 1
        if backlog:
            unit_ids = sorted(units)
            cost = np.full((len(backlog), len(unit_ids)), big)
            plans = {}
            for r, (created, cid, k, agency) in enumerate(backlog):
                case = cases[cid]
                limit = case.category.sla.arrive_s
                ack = crew.ack_s(f"{cid}-O{k + 1}")
                for c, uid in enumerate(unit_ids):
                    unit = units[uid]
                    if not unit.may_act_for(case.category, agency):
                        continue
                    begin = max(created, window, free_at[uid])
                    span = next(((a, b) for a, b in spans[uid] if b > begin), None)
                    if span is None:
                        continue
                    begin = max(begin, span[0])
                    arrive = begin + ack + 5 + crew.travel_s(sim_units[uid], case.lat, case.lon)
                    if arrive > span[1]:
                        continue  # the shift ends before the unit would get there
                    tta = arrive - created
                    cost[r, c] = tta + (late_penalty_s if tta > limit else 0.0)
                    plans[(r, c)] = (begin, arrive)
            rows, cols = linear_sum_assignment(cost)
            done = set()
            for r, c in zip(rows, cols):
                if cost[r, c] >= big:
                    continue
                created, cid, k, agency = backlog[r]
                uid = unit_ids[c]
                begin, arrive = plans[(r, c)]
                case = cases[cid]
                if case.dispatched_s is None or begin < case.dispatched_s:
                    case.dispatched_s = begin
                if case.arrived_s is None or arrive < case.arrived_s:
                    case.arrived_s = arrive
                free_at[uid] = arrive + crew.handle_s(cid, case.category)
                sim_units[uid].lat, sim_units[uid].lon = case.lat, case.lon
                handled[uid] += 1
                done.add(r)
            backlog = [job for r, job in enumerate(backlog) if r not in done]
        window = window_end
        if advance is not None:
            advance(to=min(window, end_s))
    return DayRun("hindsight", cases, handled, Counter(), 0, end_s)


def dispatch_quality(catalogue: Catalogue, geography: Geography, roster: list[dict], *, hours: float,
                     intensity: float, seed: int = 1, steps: Steps | None = None) -> QualityDay:
    plan = plan_day(catalogue, geography, roster, seed=seed, hours=hours, intensity=intensity)
    runs = []
    for name, policy in (("ours", DispatchPolicy()), ("closest-idle", CLOSEST_IDLE)):
        total = hours * 3600 + 7200
        with (steps.task(f"quality, {intensity:g}× day: {name}", total) if steps else contextlib.nullcontext()) as adv:
            runs.append(simulate_day(catalogue, geography, plan, policy, name, seed=seed, advance=adv))
    with (steps.task(f"quality, {intensity:g}× day: hindsight", runs[0].end_s) if steps
          else contextlib.nullcontext()) as adv:
        runs.append(hindsight(catalogue, roster, plan, runs[0], seed, advance=adv))
    return QualityDay(intensity=intensity, hours=hours, seed=seed, reports=plan.count("report"),
                      messages=len(plan.messages), units=len(roster),
                      rows=[judge(run, catalogue, roster, plan.start) for run in runs])


@dataclass
class SweepRow:
    seed: int
    judged: int
    late: dict[str, int]  # policy -> late arrivals (the core's rule)
    late_report: dict[str, int]  # policy -> late arrivals (from the report)


def policy_sweep(catalogue: Catalogue, geography: Geography, roster: list[dict], *, hours: float, intensity: float,
                 seeds: tuple[int, ...], steps: Steps | None = None) -> list[SweepRow]:
    """Ours against closest-idle on more days than one, to tell a real difference from one day's luck."""
    rows = []
    with (steps.task(f"quality, {intensity:g}× days: seeds", len(seeds)) if steps else contextlib.nullcontext()) as adv:
        for seed in seeds:
            plan = plan_day(catalogue, geography, roster, seed=seed, hours=hours, intensity=intensity)
            late, late_report, judged = {}, {}, 0
            for name, policy in (("ours", DispatchPolicy()), ("closest-idle", CLOSEST_IDLE)):
                row = judge(simulate_day(catalogue, geography, plan, policy, name, seed=seed), catalogue, roster,
                            plan.start)
                late[name], late_report[name], judged = row.late_sla, row.late_report, row.judged
            rows.append(SweepRow(seed, judged, late, late_report))
            if adv:
                adv()
    return rows


# ============================================================================ 5. memory


def _rss_bytes(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> float:
    """CPU time all cores of the machine have spent busy so far (every process, ours or not)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


ROLES = ("worker", "sink", "broker", "PostgreSQL", "raw pipe", "benchmark clients", "everything else")


def _role(pid: int, me: int) -> str | None:
    """Which part of the benchmark a process is, from its command line (None: not ours)."""
    if pid == me:
        return "benchmark clients"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    if "streams.cli worker" in command:
        return "worker"
    if "streams.cli sink" in command:
        return "sink"
    if "streams.bench pipe" in command:
        return "raw pipe"
    if "tansu" in command or "kafka.Kafka" in command:
        return "broker"
    if "postgres" in command:
        return "PostgreSQL"
    return None


def _our_processes() -> dict[int, str]:
    """Our process and its descendants, by role."""
    me = os.getpid()
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                children[int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])].append(int(entry))
    found, todo = {}, [me]
    while todo:
        pid = todo.pop()
        role = _role(pid, me)
        if role is not None:
            found[pid] = role
        todo += children.get(pid, [])
    return found


class CpuWatch:
    """Cores used between start() and stop(): by the worker, the broker, PostgreSQL, the raw pipe, the
    benchmark's own clients, and whatever else the machine ran meanwhile (other people's work included)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.cores: dict[str, float] = {}

    @staticmethod
    def _sample() -> tuple[dict[int, tuple[str, float]], float]:
        used = {}
        for pid, role in _our_processes().items():
            with contextlib.suppress(OSError, IndexError, ValueError):
                used[pid] = (role, _cpu_seconds(pid))
        return used, _machine_busy_seconds()

    def start(self) -> "CpuWatch":
        self._t = time.monotonic()
        self._before, self._machine = self._sample()
        return self

    def stop(self) -> "CpuWatch":
        elapsed = max(1e-9, time.monotonic() - self._t)
        after, machine = self._sample()
        cores: dict[str, float] = dict.fromkeys(ROLES, 0.0)
        for pid, (role, seconds) in after.items():
            cores[role] += (seconds - self._before.get(pid, (role, 0.0))[1]) / elapsed
        cores["everything else"] = max(0.0, (machine - self._machine) / elapsed - sum(cores.values()))
        self.cores, self.elapsed = cores, elapsed
        return self

    def cpu_seconds(self, role: str) -> float:
        return self.cores.get(role, float("nan")) * self.elapsed

    @property
    def worker(self) -> float:
        return self.cores.get("worker", float("nan"))

    @property
    def machine(self) -> float:
        return sum(self.cores.values()) if self.cores else float("nan")


def memory_probe(n_units: int, n_incidents: int, traced: bool) -> dict[str, float]:
    """Bytes a district core holds per unit, per open incident and per closed incident (run in a fresh process).

    The inputs are made on the fly inside each measured phase, so that what the core keeps
    (its ids, its coordinates) is counted and nothing the benchmark keeps is."""
    import tracemalloc

    catalogue, geography, _ = reference(Settings())
    categories = bench_categories(catalogue, 200.0)
    minx, miny, maxx, maxy = _bounds(geography)
    rnd = random.Random(5)

    def point() -> tuple[float, float, str]:
        while True:
            lat, lon = rnd.uniform(miny, maxy), rnd.uniform(minx, maxx)
            street = geography.locate(lat, lon)
            if street is not None:
                return lat, lon, street.street

    def measure() -> int:
        gc.collect()
        return tracemalloc.get_traced_memory()[0] if traced else _rss_bytes()

    if traced:
        tracemalloc.start()
    empty = measure()
    core = DistrictCore(DISTRICT, catalogue)
    for i in range(n_units):
        lat, lon, street = point()
        core.apply(_log_on_item({"unit_id": f"M{i:06d}", "agency": ("police", "traffic", "city_management")[i % 3],
                                 "kind": "officer", "district": DISTRICT, "home_street": street,
                                 "mode": ("car", "bike", "foot")[(i // 3) % 3], "delegations": [],
                                 "lat": lat, "lon": lon}, T0, i))
    with_units = measure()
    at = T0
    orders: list[tuple[str, str]] = []
    for j in range(n_incidents):
        lat, lon, street = point()
        at += timedelta(milliseconds=100)
        out = core.apply(_report_item(f"MR{j:06d}", categories[j % len(categories)].code, lat, lon, street, at))
        orders += [(o.unit_id, o.order_id) for o in out if isinstance(o, DispatchOrder) and o.kind == "assign"]
    # the benchmark's own list of orders is not the core's: take it out of the figures
    ours = sys.getsizeof(orders) + sum(sys.getsizeof(o) for o in orders)
    with_open = measure() - ours
    open_now = sum(1 for i in core.state.incidents.values() if i.is_open)
    for k, (unit_id, order_id) in enumerate(orders):
        core.apply(_status_item(unit_id, "resolved", order_id, at, k))
    with_closed = measure() - ours
    closed_now = sum(1 for i in core.state.incidents.values() if not i.is_open)
    # a day later, with the clock ticking: the closed incidents forgotten, their report ids kept
    core.apply(WorkItem(kind="tick", district=DISTRICT, at=at + CLOSED_KEPT + timedelta(seconds=1)))
    with_forgotten = measure() - ours
    return {"units": n_units, "incidents": n_incidents, "open": open_now, "closed": closed_now,
            "empty": empty, "with_units": with_units, "with_open": with_open, "with_closed": with_closed,
            "per_unit": (with_units - empty) / max(1, n_units),
            "per_open_incident": (with_open - with_units) / max(1, open_now),
            "per_closed_incident": (with_closed - with_units) / max(1, closed_now),
            "per_forgotten_incident": (with_forgotten - with_units) / max(1, closed_now)}


def memory_footprint(n_units: int, n_incidents: int, steps: Steps | None = None) -> Memory:
    """Both probes, each in a fresh interpreter: tracemalloc (exact Python allocations) and VmRSS (resident)."""
    results = {}
    with (steps.task("memory per unit and incident", 2) if steps else contextlib.nullcontext()) as adv:
        for traced in (True, False):
            done = subprocess.run([sys.executable, "-m", "streams.bench", "memory", str(n_units), str(n_incidents),
                                   "traced" if traced else "rss"], capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                raise RuntimeError(f"memory probe failed: {done.stderr[-2000:]}")
            results[traced] = json.loads(done.stdout.strip().splitlines()[-1])
            if adv:
                adv()
    keys = ("per_unit", "per_open_incident", "per_closed_incident", "per_forgotten_incident")
    return Memory(units=n_units, incidents=n_incidents, traced={k: results[True][k] for k in keys},
                  resident={k: results[False][k] for k in keys})


# ============================================================================ 1-2. the streams benchmarks


def _pipe_topics(settings: Settings) -> tuple[str, str]:
    return f"{settings.app_id}-pipe-in", f"{settings.app_id}-pipe-out"


async def _create_topics(settings: Settings, names: list[str]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, **settings.kafka_client_options())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, settings.topic_partitions, settings.topic_replication) for n in names])
    finally:
        await admin.close()


async def raw_pipe(settings: Settings, source: str, target: str, group: str, ready: Path,
                   fetch_wait_ms: int) -> None:
    """The baseline: a plain consumer group reading `source` and producing every record to `target`.

    Configured as the worker's clients are (same fetch wait; the same producer options: acks=all, idempotent where
    the broker allows; offsets committed about once a second like faust's commit interval). Once in its group it holds still
    (SIGUSR1) until told to run (SIGUSR2): a consumer polling at our fetch wait costs the embedded broker
    about a tenth of a core even with nothing to read, which the worker's phases must not pay for."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    options = settings.kafka_client_options()
    consumer = AIOKafkaConsumer(source, bootstrap_servers=settings.kafka_bootstrap, group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=fetch_wait_ms,
                                session_timeout_ms=10_000, heartbeat_interval_ms=2_000, **options)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=0, **settings.producer_options())
    await producer.start()
    await consumer.start()
    loop = asyncio.get_running_loop()
    last_commit = loop.time()
    running = asyncio.Event()

    def hold_still() -> None:
        running.clear()
        # aiokafka's fetcher polls in the background whether or not it is read: paused, it stops
        consumer.pause(*consumer.assignment())

    def run() -> None:
        consumer.resume(*consumer.assignment())
        running.set()

    loop.add_signal_handler(signal.SIGUSR1, hold_still)
    loop.add_signal_handler(signal.SIGUSR2, run)
    try:
        while True:
            if ready.exists() and not running.is_set():
                await running.wait()
            batch = await consumer.getmany(timeout_ms=100)
            if consumer.assignment() and not ready.exists():
                hold_still()
                ready.write_text("joined\n")
            for records in batch.values():
                for record in records:
                    await producer.send(target, record.value, key=record.key)
            if batch and loop.time() - last_commit >= 1.0:
                await consumer.commit()
                last_commit = loop.time()
    finally:
        await consumer.stop()
        await producer.stop()


class _RawPipe:
    """The raw pipe's process, started with the phase's worker so that its group forms meanwhile."""

    def __init__(self, live: Settings, workdir: Path, env: dict[str, str]):
        from streams.embedded import spawn_child

        self.source, self.target = _pipe_topics(live)
        self.ready = workdir / f"{live.app_id}-pipe.ready"
        self.process = spawn_child(
            [sys.executable, "-m", "streams.bench", "pipe", self.source, self.target,
             f"{live.app_id}-pipe", str(self.ready), str(live.fetch_max_wait_ms)],
            # the broker and its security settings, as the worker gets them
            log=workdir / "pipe.log", death_signal=signal.SIGTERM, env={**env, **live.to_env()})

    def stop(self) -> None:
        from streams.embedded import stop_child

        stop_child(self.process, signal.SIGTERM, 10)

    @contextlib.asynccontextmanager
    async def running(self):
        """The pipe polling the broker (it holds still otherwise)."""
        await _eventually(lambda: asyncio.sleep(0, result=self.ready.exists()), 120, "the raw pipe joining its group")
        self.process.send_signal(signal.SIGUSR2)
        await asyncio.sleep(0.3)  # its poll in hand ends within 100 ms
        try:
            yield
        finally:
            self.process.send_signal(signal.SIGUSR1)


class _Reports:
    """Valid reports spread over the district: a lattice of points 450 m apart times the single-agency
    categories, shuffled, so that no two reports of a run are duplicates of one another (each is one
    incident and one order) until the slots run out."""

    def __init__(self, catalogue: Catalogue, geography: Geography, run: str, seed: int = 11):
        rnd = random.Random(seed)
        categories = [c for c in bench_categories(catalogue, 200.0)]
        self.slots = [(p, c.code) for p in lattice(geography, 450.0) for c in categories]
        rnd.shuffle(self.slots)
        self.run = run
        self.n = 0

    def make(self, tag: str, count: int) -> list[tuple[str, str, bytes]]:
        """(report_id, incident_id, value) for `count` new reports."""
        now = datetime.now(timezone.utc).isoformat()
        out = []
        for _ in range(count):
            (lat, lon, _street), code = self.slots[self.n % len(self.slots)]
            self.n += 1
            report_id = f"BENCH{self.run}-{tag}-{self.n:07d}"
            doc = {"schema_version": 1, "report_id": report_id, "source": "sensor", "category": code,
                   "lat": lat, "lon": lon, "reported_at": now, "sensor_id": "CAM-001", "confidence": 0.9}
            out.append((report_id, incident_id_for(DISTRICT, report_id), json.dumps(doc).encode()))
        return out


class _Orders:
    """Reads dispatch.orders without a group (from the end) and plays the field units: it notes when each
    awaited incident's first order arrived and, while `answer` is on, resolves every order at once, so that
    units come free as fast as they are taken."""

    def __init__(self, settings: Settings, producer):
        from aiokafka import AIOKafkaConsumer

        self.settings = settings
        self.producer = producer
        self.consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                                         fetch_max_wait_ms=settings.fetch_max_wait_ms,
                                         **settings.kafka_client_options())
        self.sent: dict[str, float] = {}  # incident id -> when its report was handed to the producer
        self.seen: dict[str, float] = {}  # incident id -> when its first order was read
        self.answer = True
        self.held: list[dict] = []
        self.orders = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        from streams.topics import DISPATCH_ORDERS

        await self.consumer.start()
        partitions = await partitions_of(self.consumer, DISPATCH_ORDERS)
        self.consumer.assign(partitions)
        await self.consumer.seek_to_end(*partitions)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        await self.consumer.stop()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            batch = await self.consumer.getmany(timeout_ms=50)
            now = loop.time()
            for records in batch.values():
                for record in records:
                    try:
                        order = json.loads(record.value)
                    except ValueError:
                        continue
                    if order.get("kind") != "assign":
                        continue
                    self.orders += 1
                    incident_id = order.get("incident_id")
                    if incident_id in self.sent and incident_id not in self.seen:
                        self.seen[incident_id] = now
                    if self.answer:
                        await self.resolve(order)
                    else:
                        self.held.append(order)

    async def resolve(self, order: dict) -> None:
        from streams.topics import UNIT_EVENTS

        doc = {"schema_version": 1, "event_id": f"bench-{order['order_id']}", "unit_id": order["unit_id"],
               "at": datetime.now(timezone.utc).isoformat(), "type": "resolved", "order_id": order["order_id"],
               "outcome": "handled"}
        await self.producer.send(UNIT_EVENTS, json.dumps(doc).encode(), key=order["unit_id"].encode())

    async def release(self) -> None:
        """Answer every order held back and answer at once from now on."""
        held, self.held = self.held, []
        self.answer = True
        for order in held:
            await self.resolve(order)

    def latencies_ms(self, incident_ids: list[str]) -> list[float]:
        return [(self.seen[i] - self.sent[i]) * 1000 for i in incident_ids if i in self.seen]


def _scrape(port: int) -> dict[str, list[tuple[dict, float]]]:
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, list[tuple[dict, float]]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name].append((sample.labels, sample.value))
    return out


DECISION_HISTOGRAM = "patrol_dispatch_decision_seconds"
INTAKE_WAIT_HISTOGRAM = "patrol_intake_wait_seconds"


def _histograms(port: int, *names: str) -> dict[str, dict[float, float]]:
    """The worker's histograms `names`, each as cumulative counts by upper bound (summed over their labels)."""
    scraped = _scrape(port)
    out: dict[str, dict[float, float]] = {}
    for name in names:
        buckets: dict[float, float] = defaultdict(float)
        for labels, value in scraped.get(f"{name}_bucket", []):
            buckets[float(labels["le"])] += value
        out[name] = dict(buckets)
    return out


def _histogram_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """Prometheus' histogram_quantile over the difference of two scrapes (seconds; inf if in the last bucket)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return float("nan")
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, cumulative in zip(bounds, counts):
        if cumulative >= rank:
            if math.isinf(bound):
                return float("inf")
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, cumulative
    return float("inf")


def _p50_p99_ms(before: dict[float, float], after: dict[float, float]) -> dict[str, float]:
    """p50 and p99 in milliseconds of what a histogram took in between two scrapes."""
    return {q: 1000 * _histogram_quantile(before, after, p) for q, p in (("p50", 0.5), ("p99", 0.99))}


async def _eventually(probe, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await probe()
        if value:
            return value
        await asyncio.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")


class _PipeReader:
    """Reads the raw pipe's output without a group (from the end) and notes when each key arrived."""

    def __init__(self, live: Settings, topic: str):
        from aiokafka import AIOKafkaConsumer

        self.topic = topic
        self.consumer = AIOKafkaConsumer(bootstrap_servers=live.kafka_bootstrap, enable_auto_commit=False,
                                         fetch_max_wait_ms=live.fetch_max_wait_ms, **live.kafka_client_options())
        self.piped: dict[str, float] = {}
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> "_PipeReader":
        await self.consumer.start()
        parts = await partitions_of(self.consumer, self.topic)
        self.consumer.assign(parts)
        await self.consumer.seek_to_end(*parts)
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            batch = await self.consumer.getmany(timeout_ms=50)
            now = loop.time()
            for records in batch.values():
                for record in records:
                    self.piped.setdefault(record.key.decode(), now)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        await self.consumer.stop()


async def _records_in_broker(live: Settings) -> int:
    """Records on every topic of the broker so far (the sum of the end offsets)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=live.kafka_bootstrap, **live.kafka_client_options())
    await consumer.start()
    try:
        partitions = await partitions_of(consumer, *await consumer.topics())
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


async def _through_pipe(producer, pipe: _PipeReader, pipe_in: str, payload: bytes, keys: list[str], rate: float,
                        advance) -> list[float]:
    """Publish one record per key at `rate`/s into the raw pipe; publish → read latency (ms) of those read
    back within 30 s of the last."""
    loop = asyncio.get_running_loop()
    sent: dict[str, float] = {}
    t0 = loop.time()
    for i, key in enumerate(keys):
        wait = t0 + i / rate - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        sent[key] = loop.time()
        await producer.send(pipe_in, payload, key=key.encode())
        if i % 50 == 0:
            advance(to=i)
    end = loop.time() + 30
    while loop.time() < end and not all(k in pipe.piped for k in keys):
        await asyncio.sleep(0.05)
    return [(pipe.piped[k] - sent[k]) * 1000 for k in keys if k in pipe.piped]


async def _latency_at(rate: int, sizes: Sizes, raw: _RawPipe, orders: "_Orders", reports: "_Reports", producer,
                      live: Settings, metrics_port: int, worker_pid: int, steps: Steps, alive, merged) -> LatencyStep:
    """The raw pipe's latency at `rate`, then reports at `rate` through the worker, every order answered at once."""
    from streams.topics import INCIDENT_REPORTS

    loop = asyncio.get_running_loop()
    # --- the pipe at this rate: the floor of a Kafka hop pair on this broker
    payload = reports.make("X", 1)[0][2]
    n = max(1, int(rate * sizes.pipe_rate_seconds))
    keys = [f"L{rate}-{i:07d}" for i in range(n)]
    async with raw.running():
        pipe = await _PipeReader(live, raw.target).start()
        with steps.task(f"raw pipe latency at {rate}/s", n) as advance:
            pipe_ms = await _through_pipe(producer, pipe, raw.source, payload, keys, rate, advance)
        await pipe.stop()

    # --- reports at this rate
    await asyncio.sleep(1.0)
    n = max(1, int(rate * sizes.rate_seconds))
    tag = f"L{rate}"
    batch = reports.make(tag, n)
    before = await asyncio.to_thread(_histograms, metrics_port, DECISION_HISTOGRAM, INTAKE_WAIT_HISTOGRAM)
    records_before = await _records_in_broker(live)
    with steps.task(f"latency at {rate} reports/s", n) as advance:
        watch = CpuWatch(worker_pid).start()
        t0 = loop.time()
        for i, (report_id, incident_id, value) in enumerate(batch):
            wait = t0 + i / rate - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            orders.sent[incident_id] = loop.time()
            await producer.send(INCIDENT_REPORTS, value, key=report_id.encode())
            if i % 50 == 0:
                advance(to=i)
        send_seconds = loop.time() - t0
        ids = [incident_id for _, incident_id, _ in batch]
        end = loop.time() + sizes.drain_seconds
        while loop.time() < end:
            alive()
            answered = sum(1 for i in ids if i in orders.seen)
            advance(to=answered)
            if answered >= n or answered + await merged(tag) >= n:
                break
            await asyncio.sleep(0.1)
        watch.stop()
        records = await _records_in_broker(live) - records_before
    await asyncio.sleep(0.5)  # let the worker's histogram take in the last orders
    after = await asyncio.to_thread(_histograms, metrics_port, DECISION_HISTOGRAM, INTAKE_WAIT_HISTOGRAM)
    merges = await merged(tag)
    values = orders.latencies_ms(ids)
    return LatencyStep(
        rate=rate, seconds=sizes.rate_seconds, sent=n, send_seconds=send_seconds, latencies_ms=values,
        merged=merges, unanswered=max(0, n - len(values) - merges),
        worker_ms=_p50_p99_ms(before[DECISION_HISTOGRAM], after[DECISION_HISTOGRAM]),
        intake_ms=_p50_p99_ms(before[INTAKE_WAIT_HISTOGRAM], after[INTAKE_WAIT_HISTOGRAM]),
        pipe_ms=pipe_ms, worker_cores=watch.worker, machine_cores=watch.machine, cores=watch.cores,
        broker_records=records)


async def _stream_phase(live: Settings, metrics_port: int, worker_pid: int, raw: _RawPipe, sizes: Sizes,
                        catalogue: Catalogue, geography: Geography, steps: Steps, alive,
                        rate: int | None) -> tuple[Throughput | None, LatencyStep | None, dict[str, float]]:
    """One phase on a worker of its own: the throughput burst and the pipe's (rate None), or the latency at
    `rate` reports/s and the pipe's at that rate."""
    import asyncpg
    from aiokafka import AIOKafkaProducer

    from streams.topics import INCIDENT_REPORTS, UNIT_EVENTS

    loop = asyncio.get_running_loop()
    run = uuid.uuid4().hex[:6].upper()
    reports = _Reports(catalogue, geography, run)
    producer = AIOKafkaProducer(bootstrap_servers=live.kafka_bootstrap, linger_ms=0,
                                max_batch_size=65536, **live.producer_options())
    await producer.start()
    orders = _Orders(live, producer)
    await orders.start()
    db = await asyncpg.connect(live.database_url)
    memory: dict[str, float] = {}

    async def send_reports(batch: list[tuple[str, str, bytes]]) -> None:
        for report_id, incident_id, value in batch:
            orders.sent[incident_id] = loop.time()
            await producer.send(INCIDENT_REPORTS, value, key=report_id.encode())

    async def log_on(units: list[dict]) -> None:
        now = datetime.now(timezone.utc).isoformat()
        for unit in units:
            doc = {"schema_version": 1, "event_id": f"bench-on-{unit['unit_id']}", "at": now, "type": "log_on", **unit}
            await producer.send(UNIT_EVENTS, json.dumps(doc).encode(), key=unit["unit_id"].encode())
        await producer.flush()

    async def settled(tag: str) -> int:
        """Reports of a tag accounted for in PostgreSQL: an incident row, or a merge into another incident."""
        return await db.fetchval(
            """SELECT (SELECT count(*) FROM incidents WHERE report_id LIKE $1)
                    + (SELECT count(*) FROM incident_events WHERE type = 'report_merged'
                       AND data->>'report_id' LIKE $1)""", f"BENCH{run}-{tag}-%")

    async def merged(tag: str) -> int:
        return await db.fetchval("SELECT count(*) FROM incident_events WHERE type = 'report_merged' "
                                 "AND data->>'report_id' LIKE $1", f"BENCH{run}-{tag}-%")

    try:
        # --- the worker is ready when a first report has become an order and a row
        with steps.task("waiting for the worker to join its groups", 1) as advance:
            rnd = random.Random(3)
            # one unit of each agency, so that whatever the first report's category, someone can take it
            await log_on(generated_units(geography, 3, rnd, f"BW{run}-"))
            warm = reports.make("W", 1)
            await send_reports(warm)
            await producer.flush()

            async def warmed():
                alive()
                return warm[0][1] in orders.seen and await settled("W") >= 1

            await _eventually(warmed, 240, "the worker's first order and row")
            advance()
        memory["rss_ready"] = _rss_bytes(worker_pid)
        # each agency in proportion to the categories the reports are drawn from, so none runs dry first
        demand = Counter(catalogue.get(code).agencies[0] for _, code in reports.slots)
        agencies = tuple(sorted(demand))
        units = generated_units(geography, sizes.stream_units, rnd, f"BU{run}-", agencies,
                                tuple(demand[a] for a in agencies))
        with steps.task(f"logging on {len(units):,} units", len(units)) as advance:
            await log_on(units)

            async def all_on():
                alive()
                counted = sum(v for labels, v in (await asyncio.to_thread(_scrape, metrics_port)).get("patrol_units", [])
                              if labels.get("district") == DISTRICT)
                advance(to=counted)
                return counted >= len(units) + 3

            await _eventually(all_on, 180, "the units' log-ons", interval=0.5)
        memory["rss_units"] = _rss_bytes(worker_pid)
        memory["units"] = len(units) + 3

        throughput = None
        if rate is None:
            # --- 1. throughput: a burst of reports, the crew holding its answers (the report path alone)
            orders.answer = False
            burst = reports.make("T", sizes.throughput_reports)
            records_before = await _records_in_broker(live)
            with steps.task(f"throughput: {len(burst):,} reports to PostgreSQL", len(burst)) as advance:
                sampler = Sampler(worker_pid, Path(live.data_dir) / "worker-profile.txt").start()
                watch = CpuWatch(worker_pid).start()
                started = loop.time()
                await send_reports(burst)
                await producer.flush()
                deadline = started + max(120.0, len(burst) / 20)
                done = 0
                while loop.time() < deadline:
                    alive()
                    done = await settled("T")
                    advance(to=done)
                    if done >= len(burst):
                        break
                    await asyncio.sleep(0.05)
                seconds = loop.time() - started
                watch.stop()
                profile = await asyncio.to_thread(sampler.stop)
                decided = [orders.seen[i] for _, i, _ in burst if i in orders.seen]
                orders_seconds = (max(decided) - started) if decided else float("nan")
            throughput_merged = await merged("T")
            broker_records = await _records_in_broker(live) - records_before
            await orders.release()

            # --- the baseline pipe: the same payloads through a plain consume → produce loop
            payloads = [(f"P-{i:07d}", value) for i, (_, _, value) in
                        enumerate(burst[i % len(burst)] for i in range(sizes.pipe_records))]
            async with raw.running():
                pipe = await _PipeReader(live, raw.target).start()
                piped = pipe.piped
                with steps.task(f"raw pipe: {len(payloads):,} records", len(payloads)) as advance:
                    pipe_watch = CpuWatch(worker_pid).start()
                    pipe_started = loop.time()
                    for key, value in payloads:
                        await producer.send(raw.source, value, key=key.encode())
                    await producer.flush()
                    pipe_deadline = pipe_started + 120
                    while len(piped) < len(payloads) and loop.time() < pipe_deadline:
                        advance(to=len(piped))
                        await asyncio.sleep(0.02)
                    pipe_seconds = max(piped.values(), default=loop.time()) - pipe_started
                    pipe_watch.stop()
                await pipe.stop()
            throughput = Throughput(reports=done, seconds=seconds, merged=throughput_merged,
                                    pipe_records=len(piped), pipe_seconds=pipe_seconds, orders=len(decided),
                                    orders_seconds=orders_seconds, worker_cores=watch.worker,
                                    broker_records=broker_records, profile=profile,
                                    pipe_cpu_s=pipe_watch.cpu_seconds("raw pipe"),
                                    machine_cores=watch.machine, cores=watch.cores)

        step = None
        if rate is not None:
            step = await _latency_at(rate, sizes, raw, orders, reports, producer, live, metrics_port, worker_pid,
                                     steps, alive, merged)
        await asyncio.sleep(1.0)
        memory["rss_end"] = _rss_bytes(worker_pid)
        memory["incidents"] = await db.fetchval("SELECT count(*) FROM incidents WHERE report_id LIKE $1",
                                                f"BENCH{run}-%")
        memory["open_incidents"] = await db.fetchval(
            "SELECT count(*) FROM incidents WHERE report_id LIKE $1 AND status NOT IN ('closed', 'cancelled')",
            f"BENCH{run}-%")
        return throughput, step, memory
    finally:
        await orders.stop()
        await producer.stop()
        await db.close()


def stream_benchmarks(base: Settings, sizes: Sizes, catalogue: Catalogue, geography: Geography,
                      steps: Steps) -> tuple[Throughput, list[LatencyStep], dict[str, float]]:
    """One embedded PostgreSQL; for each phase (the burst, then each offered rate) a new embedded broker, a
    worker process and a raw pipe process: the embedded broker slows down as its topics grow (broker_growth),
    so a phase measured after another would measure the broker's past, not the worker."""
    from streams.embedded import EmbeddedDatabase
    from streams.migrate import migrate

    workdir = Path(base.data_dir).resolve() / "bench" / base.embedded_broker
    workdir.mkdir(parents=True, exist_ok=True)
    # the Kafka clients' INFO lines (every subscription change) would tear the progress bars
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    with contextlib.ExitStack() as stack:
        with steps.task("starting the embedded PostgreSQL", 1) as advance:
            database = EmbeddedDatabase(workdir).start()
            stack.callback(database.stop)
            advance()
        asyncio.run(migrate(database.url))
        throughput, latency, memory = None, [], {}
        for rate in (None, *sizes.rates):
            t, step, m = _phase_on_new_broker(base, database.url, workdir, sizes, catalogue, geography, steps, rate)
            if t is not None:
                throughput, memory = t, m  # the worker's memory is read in the burst (the most open incidents)
            if step is not None:
                latency.append(step)
        return throughput, latency, memory


@dataclass
class GrowthStep:
    records_before: int  # records already through the pipe's topics when this block started
    sent: int
    latencies_ms: list[float]


async def _growth_blocks(live: Settings, raw: _RawPipe, rate: int, seconds: float, blocks: int,
                         steps: Steps) -> list[GrowthStep]:
    async with raw.running():
        return await _growth_blocks_running(live, raw, rate, seconds, blocks, steps)


async def _growth_blocks_running(live: Settings, raw: _RawPipe, rate: int, seconds: float, blocks: int,
                                 steps: Steps) -> list[GrowthStep]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=live.kafka_bootstrap, linger_ms=0,
                                **live.producer_options())
    await producer.start()
    pipe = await _PipeReader(live, raw.target).start()
    payload = json.dumps({"schema_version": 1, "pad": "x" * 300}).encode()
    out, through = [], 0
    try:
        for block in range(blocks):
            n = int(rate * seconds)
            keys = [f"G{block}-{i:07d}" for i in range(n)]
            with steps.task(f"raw pipe on a new broker: block {block + 1} of {blocks} at {rate}/s", n) as advance:
                latencies = await _through_pipe(producer, pipe, raw.source, payload, keys, rate, advance)
            out.append(GrowthStep(through, n, latencies))
            through += n
    finally:
        await pipe.stop()
        await producer.stop()
    return out


def broker_growth(base: Settings, sizes: Sizes, steps: Steps) -> list[GrowthStep]:
    """The raw pipe alone on a new embedded broker, at a fixed rate in consecutive blocks: how a hop's
    latency moves as the topics fill up (the reason every streams phase gets a broker of its own)."""
    return _pipe_on_new_broker(base, "growth", sizes.growth_rate, sizes.growth_seconds, sizes.growth_blocks, steps)


def broker_floor(base: Settings, step: LatencyStep, steps: Steps) -> GrowthStep:
    """The raw pipe alone, on a new broker, made to move as many records as the report path did at `step`'s
    rate (each piped record is produced twice and read twice, as ours are about once each): the latency any
    consumer → producer hop meets on this broker at that load, with no worker at all."""
    rate = max(1, round(step.broker_records_per_s / 2))
    return _pipe_on_new_broker(base, "floor", rate, step.seconds, 1, steps)[0]


def _pipe_on_new_broker(base: Settings, name: str, rate: int, seconds: float, blocks: int,
                        steps: Steps) -> list[GrowthStep]:
    from streams.embedded import embedded_broker

    workdir = Path(base.data_dir).resolve() / "bench" / base.embedded_broker / name
    workdir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        broker = embedded_broker(base, workdir).start()
        stack.callback(broker.stop)
        live = base.with_overrides(kafka_bootstrap=broker.bootstrap, app_id=f"patrol-growth-{uuid.uuid4().hex[:8]}",
                                   kafka_security_protocol="PLAINTEXT", kafka_idempotence=broker.idempotence)
        asyncio.run(_create_topics(live, list(_pipe_topics(live))))
        raw = _RawPipe(live, workdir, {k: v for k, v in os.environ.items() if not k.startswith("PATROL_")})
        stack.callback(raw.stop)
        return asyncio.run(_growth_blocks(live, raw, rate, seconds, blocks, steps))


def _phase_on_new_broker(base: Settings, database_url: str, workdir: Path, sizes: Sizes, catalogue: Catalogue,
                         geography: Geography, steps: Steps, rate: int | None):
    from streams.embedded import embedded_broker, free_port, spawn_child, stop_child
    from streams.topics import ensure_topics

    phase = "burst" if rate is None else f"rate-{rate}"
    phase_dir = workdir / phase
    phase_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        with steps.task(f"{phase}: starting a new embedded broker and a worker", 1) as advance:
            broker = embedded_broker(base, phase_dir).start()
            stack.callback(broker.stop)
            advance()
        # always our own broker and database: a benchmark publishes made-up reports
        live = base.with_overrides(kafka_bootstrap=broker.bootstrap, database_url=database_url,
                                   app_id=f"patrol-bench-{uuid.uuid4().hex[:8]}", data_dir=phase_dir,
                                   kafka_security_protocol="PLAINTEXT", kafka_idempotence=broker.idempotence)
        asyncio.run(ensure_topics(live))
        asyncio.run(_create_topics(live, list(_pipe_topics(live))))
        # the sink in a process of its own, as deploy/ runs it: the audit writes stay off the dispatch path
        worker_settings = live.with_overrides(metrics_port=free_port(), sink_in_worker=False)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PATROL_")}
        worker = spawn_child([sys.executable, "-m", "streams.cli", "worker"], log=phase_dir / "worker.log",
                             death_signal=signal.SIGTERM, env={**env, **worker_settings.to_env()})
        stack.callback(stop_child, worker, signal.SIGTERM, 30)
        sink = spawn_child([sys.executable, "-m", "streams.cli", "sink"], log=phase_dir / "sink.log",
                           death_signal=signal.SIGTERM, env={**env, **live.with_overrides(metrics_port=0).to_env()})
        stack.callback(stop_child, sink, signal.SIGTERM, 30)
        raw = _RawPipe(live, phase_dir, env)
        stack.callback(raw.stop)

        def alive() -> None:
            for name, process, log in (("worker", worker, "worker.log"), ("sink", sink, "sink.log"),
                                       ("raw pipe", raw.process, "pipe.log")):
                if process.poll() is not None:
                    raise RuntimeError(f"the {name} exited with code {process.returncode}; see {phase_dir / log}")

        return asyncio.run(_stream_phase(live, worker_settings.metrics_port, worker.pid, raw, sizes,
                                         catalogue, geography, steps, alive, rate))


# ============================================================================ the report


def _ms(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if math.isinf(value):
        return "> 10 s"
    return f"{value:,.1f}"


def _min(seconds: float) -> str:
    return "–" if seconds is None or math.isnan(seconds) else f"{seconds / 60:,.1f}"


def _pct(share: float) -> str:
    return f"{100 * share:.1f} %"


def _kb(value: float) -> str:
    return f"{value / 1024:,.2f} KiB"


def _met(met: bool | None) -> str:
    return {True: "**met**", False: "**not met**", None: "not measured"}[met]


def _first_broker(result: BenchResult) -> str:
    return result.brokers[0].label if result.brokers else "–"


def _brokers_in_words(result: BenchResult) -> str:
    names = [r.label for r in result.brokers]
    return " and, separately, ".join(names) if names else "none (the streams benchmarks did not run)"


def markdown(result: BenchResult) -> str:
    m = result.machine
    lines = [
        "# Benchmarks",
        "",
        "Written by `patrol bench` (`streams/bench.py`); every figure below was measured in the run described here, "
        "baselines included. Re-run with the command below; figures move with the machine and its load.",
        "",
        f"- **command:** `{result.command}`" + (" (quick mode: small sizes, not the recorded benchmark)" if result.quick else ""),
        f"- **machine:** {m.cpu}, {m.cores} cores, {m.memory_gb:g} GiB memory; {m.system}; {m.python}",
        f"- **date:** {m.date}; the whole run took {sum(result.seconds.values()):,.0f} s "
        f"({', '.join(f'{k} {v:,.0f} s' for k, v in result.seconds.items())})",
        f"- **infrastructure:** an embedded broker — {_brokers_in_words(result)} — and an embedded PostgreSQL "
        "(fsync off), started by the benchmark on this machine, with one worker process (`patrol worker`) and the "
        "clients on the same cores. Each streams phase (the burst, each offered rate) gets a new broker and a new "
        "worker, because Tansu slows down as its topics fill up (measured in section 2). Sections 1 and 2 describe "
        f"the first broker, {_first_broker(result)}; the section *Brokers side by side* compares them.",
        "",
        "## Targets (issues 6 and 18)",
        "",
        "| target | measured | |",
        "|---|---|---|",
    ]
    for target, measured, met in result.targets():
        lines.append(f"| {target} | {measured} | {_met(met)} |")
    lines.append("")
    lines += side_by_side(result.brokers)

    t = result.throughput
    if t is not None:
        lines += [
            "## 1. Throughput",
            "",
            f"A burst of {t.reports:,} valid reports (single-agency categories, spread over a 450 m lattice of the "
            "sample district so that none is a duplicate of another) is published at once; the clock stops when the "
            "last of them is a row in PostgreSQL (`incidents`, or a `report_merged` event). Enough units are logged "
            "on that every report gets a unit; the benchmark's field units hold their answers during the burst, so "
            "this is the report path alone: intake → work log → district core → orders and events → sink → "
            "PostgreSQL. The worker runs as deploy/ runs it: intake and the district core in `patrol worker`, the "
            "sink in a `patrol sink` process of its own (`PATROL_SINK_IN_WORKER=false`). The baseline is a plain aiokafka consumer group that reads a topic and produces each record "
            "to another (acks=all, commits once a second, the same fetch wait), in its own process on the same "
            "broker, fed the same payloads.",
            "",
            "| | records | seconds | per second |",
            "|---|---:|---:|---:|",
            f"| reports → rows in PostgreSQL (one worker) | {t.reports:,} | {t.seconds:,.2f} | **{t.rate:,.0f}** |",
            f"| reports → orders read (the core's decisions) | {t.orders:,} | {t.orders_seconds:,.2f} | {t.orders_rate:,.0f} |",
            f"| raw consume → produce pipe | {t.pipe_records:,} | {t.pipe_seconds:,.2f} | **{t.pipe_rate:,.0f}** |",
            f"| **ratio** (reports/s ÷ pipe records/s) | | | **{t.ratio:.3f}** |",
            "",
            f"Counted in what the broker took in instead: the burst put {t.broker_records:,} records on the broker "
            f"({t.broker_records / max(1, t.reports):.1f} per report), {_ratio(t.broker_records, t.seconds):,.0f} "
            f"records/s, against the pipe's {2 * t.pipe_rate:,.0f} (each piped record is taken in twice): "
            f"{_ratio(t.broker_records / max(t.seconds, 1e-9), 2 * t.pipe_rate):.2f} ×.",
            "",
            f"During the burst the worker used **{t.worker_cores:.2f} cores** of CPU, the sink "
            f"{t.cores.get('sink', float('nan')):.2f}, and the whole machine "
            f"{t.machine_cores:.2f} of its {result.machine.cores} (broker, PostgreSQL, the benchmark's clients and "
            f"anything else running) — {1000 * t.worker_cores * t.seconds / max(1, t.reports):.2f} ms of worker CPU "
            "per report.",
            "",
            "Per report the worker consumes and produces about five times what the pipe does for a record: intake "
            "reads the report and writes a work-log entry; the district core reads that and writes a `created` and "
            "a `dispatched` event and the order; the sink reads those three and writes them to PostgreSQL (an "
            "incident row, two event rows, an order row) — with JSON and pydantic validation at every step, in "
            "Python.",
            "",
        ]
        if t.merged:
            lines += [f"{t.merged} of the reports were merged into another incident as duplicates.", ""]
        lines += profile_markdown(t.profile)

    if result.latency:
        lines += [
            "## 2. Latency",
            "",
            "Reports are published at a fixed offered rate; a group-less consumer on `dispatch.orders` notes when "
            "each report's first order arrives (matched by incident id). Every order is answered at once by a "
            "`resolved` unit event, so units come free as fast as they are taken and the district stays in a steady "
            "state (each report then costs the worker a second inbound message, the resolution). *Worker* is the "
            "worker's own histogram `patrol_dispatch_decision_seconds` (intake → order published, interpolated "
            "within its buckets); *waiting for intake* is its `patrol_intake_wait_seconds` (report published, by "
            "the record's timestamp → taken by intake: the first hop and the queue in front of the worker); *pipe* "
            "is the raw pipe's publish → read latency at the same offered rate (two Kafka fetches, as on the "
            "report → order path, whose work-log entry is taken when the broker acknowledges it).",
            "",
            "| offered /s | sent | achieved /s | orders | merged | unanswered | p50 ms | p95 ms | p99 ms | max ms "
            "| waiting for intake p50 / p99 ms | worker p50 / p99 ms | pipe p50 / p99 ms | worker / machine cores |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s in result.latency:
            if s.skipped:
                lines.append(f"| {s.rate:,} | {s.skipped} | | | | | | | | | | | {_ms(s.quantile(0.5, s.pipe_ms))} / "
                             f"{_ms(s.quantile(0.99, s.pipe_ms))} | |")
                continue
            lines.append(
                f"| {s.rate:,} | {s.sent:,} | {s.achieved_rate:,.0f} | {len(s.latencies_ms):,} | {s.merged} "
                f"| {s.unanswered:,} | {_ms(s.quantile(0.5))} | {_ms(s.quantile(0.95))} | **{_ms(s.quantile(0.99))}** "
                f"| {_ms(max(s.latencies_ms) if s.latencies_ms else float('nan'))} "
                f"| {_ms(s.intake_ms.get('p50'))} / {_ms(s.intake_ms.get('p99'))} "
                f"| {_ms(s.worker_ms.get('p50'))} / {_ms(s.worker_ms.get('p99'))} "
                f"| {_ms(s.quantile(0.5, s.pipe_ms))} / {_ms(s.quantile(0.99, s.pipe_ms))} "
                f"| {s.worker_cores:.2f} / {s.machine_cores:.2f} |")
        lines += ["", "![latency](benchmarks/latency.png)", ""]
        lines += _growth_table(result)
        lines += _cpu_table(result)
        lines += _latency_analysis(result)

    c = result.cost
    if c is not None:
        lines += [
            "## 3. Decision cost",
            "",
            "The district core fed directly (no Kafka, no I/O): N officers spread uniformly over the sample "
            "district's streets, then one report at a time applied to the core (timed: the whole `apply`, which "
            "builds the incident, ranks the units through the grid and emits the events and the order as pydantic "
            "models), each then resolved by its unit (not timed), so every sample meets N free units. *Grid search* "
            "times the same ranking query alone; the baseline *full scan* answers that query by looking at every "
            "unit.",
            "",
            "| units | samples | apply mean µs | apply p50 µs | apply p99 µs | grid search mean µs "
            "| full scan mean µs | full scan ÷ grid |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in c.rows:
            ratio = r.mean("brute_us") / r.mean("search_us") if r.mean("search_us") else float("nan")
            lines.append(
                f"| {r.units:,} | {r.samples:,} | **{r.mean('apply_us'):,.0f}** | {_quantile(r.apply_us, 0.5):,.0f} "
                f"| {_quantile(r.apply_us, 0.99):,.0f} | {r.mean('search_us'):,.0f} | {r.mean('brute_us'):,.0f} "
                f"| {ratio:,.1f}× |")
        lines += [
            "",
            f"Growth, fitted on log-log: apply time ∝ units^**{c.exponent():.2f}** over all sizes, "
            f"^**{c.tail_exponent():.2f}** between the two largest sizes (grid search alone ^{c.exponent('search_us'):.2f}; "
            f"full scan ^{c.exponent('brute_us'):.2f}). 1 is linear.",
            "",
            "![decision cost](benchmarks/decision_cost.png)",
            "",
        ]
        lines += _cost_analysis(c)

    if result.quality:
        lines += [
            "## 4. Dispatch quality",
            "",
            "The simulator's day (`plan_day`: the shipped roster on two shifts, reports by time-of-day profile, "
            "hotspots, repeat calls, resends, malformed input) played offline through the district core in simulated "
            "time: every message goes through the real intake, clock ticks every 5 simulated seconds (so every "
            "time limit fires), and simulated officers answer the orders as `patrol simulate`'s do (acknowledge "
            "after ~25 s, 2 % never, 3 % decline, 0.5 % walk away; handling ~¼ of the resolve limit), travelling at "
            "their mode's speed × the core's detour factor from where they really are (they report their position "
            "on reaching a scene). Every random draw is keyed by the order or the incident, so both policies meet "
            "the same officers. Played for the day plus two hours.",
            "",
            "*closest-idle* is `CLOSEST_IDLE` (no street balancing, no pre-emption). *hindsight* knows the whole "
            "day: every 5 minutes it matches the window's incidents (and those left over) to units with scipy's "
            "`linear_sum_assignment`, minimising time to arrival plus an hour's penalty per late arrival, may book a "
            "busy unit for when it comes free, and meets no declines, silent radios or walk-outs: a reference point "
            "for what better decisions could reach, not a strict bound.",
            "",
            "*Late (SLA)* is the core's rule: nobody on scene within `arrive_s` of the first dispatch (or, never "
            "dispatched, of the report); *late from report* counts `arrive_s` from the report, as the citizen does. "
            "Both are shares of incidents whose limit ran its course. *Arrival* is report → first unit on scene, "
            "over the incidents reached. *Spread* is the coefficient of variation across streets of incidents "
            "handled per unit of the street (lower is more even).",
            "",
        ]
        for day in result.quality:
            lines += [
                f"### The {'sample' if day.intensity == 1 else f'{day.intensity:g}× busier'} day "
                f"({day.hours:g} h, seed {day.seed}, {day.reports:,} matters reported, {day.messages:,} messages, "
                f"{day.units} units)",
                "",
                "| policy | incidents | reached | mean wait for dispatch min | mean arrival min | p90 arrival min "
                "| late (SLA) | late from report | P1 reached ≤ 15 min | spread (CV) | reassigned | escalations |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for r in day.rows:
                simulated = r.policy != "hindsight"  # the hindsight plan has no ladder and no reassignments
                lines.append(
                    f"| {r.policy} | {r.incidents:,} | {r.reached:,} | {_min(r.mean_wait_s)} | {_min(r.mean_arrival_s)} "
                    f"| {_min(r.p90_arrival_s)} | **{_pct(r.late_share)}** ({r.late_sla}/{r.judged}) "
                    f"| {_pct(r.late_report_share)} | {r.p1_within_15min}/{r.p1} | {r.workload_cv:.3f} "
                    f"| {r.reassigned if simulated else '–'} "
                    f"| {f'{sum(r.escalations.values()):,}' if simulated else '–'} |")
            lines.append("")
            if day.sweep:
                ours = sum(r.late["ours"] for r in day.sweep)
                closest = sum(r.late["closest-idle"] for r in day.sweep)
                ours_r = sum(r.late_report["ours"] for r in day.sweep)
                closest_r = sum(r.late_report["closest-idle"] for r in day.sweep)
                judged = sum(r.judged for r in day.sweep)
                wins = sum(1 for r in day.sweep if r.late["ours"] < r.late["closest-idle"])
                lines += [
                    f"Over {len(day.sweep)} days of this kind (seeds "
                    f"{', '.join(str(r.seed) for r in day.sweep)}): late (SLA) ours {ours:,} vs closest-idle "
                    f"{closest:,} of {judged:,} ({_pct(ours / judged if judged else 0)} vs "
                    f"{_pct(closest / judged if judged else 0)}); ours fewer on {wins} of {len(day.sweep)} days. "
                    f"Late from report: ours {ours_r:,} vs {closest_r:,}.",
                    "",
                    "| seed | judged | late (SLA) ours | closest-idle | late from report ours | closest-idle |",
                    "|---:|---:|---:|---:|---:|---:|",
                ]
                for r in day.sweep:
                    lines.append(f"| {r.seed} | {r.judged} | {r.late['ours']} | {r.late['closest-idle']} "
                                 f"| {r.late_report['ours']} | {r.late_report['closest-idle']} |")
                lines.append("")
        lines += ["![dispatch quality](benchmarks/quality.png)", ""]
        lines += _quality_analysis(result)

    mem = result.memory
    if mem is not None:
        lines += [
            "## 5. Memory",
            "",
            f"A district core in a fresh interpreter with {mem.units:,} units, then {mem.incidents:,} reports "
            "(each dispatched: open incidents), then every one resolved (closed incidents), then the clock moved on "
            f"a day ({CLOSED_KEPT.total_seconds() / 3600:g} h, after which a closed incident is forgotten). *Traced* is "
            "tracemalloc's count of live Python allocations (exact); *resident* is the growth of VmRSS (what the "
            "operating system sees, allocator slack included). The baseline is the same interpreter before the "
            "core existed.",
            "",
            "| per | traced | resident |",
            "|---|---:|---:|",
            f"| unit | {_kb(mem.traced['per_unit'])} | {_kb(mem.resident['per_unit'])} |",
            f"| open incident | {_kb(mem.traced['per_open_incident'])} | {_kb(mem.resident['per_open_incident'])} |",
            f"| closed incident (held for a day) | {_kb(mem.traced['per_closed_incident'])} "
            f"| {_kb(mem.resident['per_closed_incident'])} |",
            f"| closed incident a day later (its report id) | {_kb(mem.traced['per_forgotten_incident'])} "
            f"| {_kb(mem.resident['per_forgotten_incident'])} |",
            "",
        ]
        w = mem.worker
        if w:
            per_unit = (w["rss_units"] - w["rss_ready"]) / max(1, w["units"])
            per_incident = (w["rss_end"] - w["rss_units"]) / max(1, w["incidents"])
            lines += [
                f"The real worker of the streams benchmarks: {w['rss_ready'] / 2**20:,.0f} MiB resident once "
                f"ready, {w['rss_units'] / 2**20:,.0f} MiB with {int(w['units']):,} units logged on "
                f"(≈ {_kb(per_unit)} per unit), {w['rss_end'] / 2**20:,.0f} MiB after {int(w['incidents']):,} "
                f"incidents ({int(w['open_incidents']):,} still open; ≈ {_kb(per_incident)} per incident, "
                "Kafka client buffers and metrics included).",
                "",
            ]
        lines += [
            "A closed incident is kept for a day, to tell its late field events apart from mistakes, and then "
            "forgotten with its orders; its report ids stay a week (`DistrictState.reports`, `RESENDS_KEPT`), so "
            "that a report resent later is still a resend. A worker's memory holds a day of incidents and a week of "
            "its districts' report ids. Resident memory seldom shrinks: Python keeps what it freed for what comes "
            "next.",
            "",
        ]
    if result.recovery is not None:
        lines += recovery_markdown(result.recovery)
    if result.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in result.notes] + [""]
    return "\n".join(lines)


def _growth_table(result: BenchResult) -> list[str]:
    if not result.growth:
        return []
    rate = round(result.growth[0].sent / max(1e-9, FULL.growth_seconds if not result.quick else QUICK.growth_seconds))
    lines = [
        f"**The embedded broker as its topics fill up.** The raw pipe alone on a new broker, offered {rate:,} "
        "records/s in consecutive blocks (publish → read, one hop each way through the pipe):",
        "",
        "| records already through | sent | read | p50 ms | p99 ms |",
        "|---:|---:|---:|---:|---:|",
    ]
    for g in result.growth:
        lines.append(f"| {g.records_before:,} | {g.sent:,} | {len(g.latencies_ms):,} | "
                     f"{_ms(_quantile(g.latencies_ms, 0.5))} | {_ms(_quantile(g.latencies_ms, 0.99))} |")
    if result.brokers and result.brokers[0].broker == "kafka":
        lines += ["", "Nothing but the amount of data in the topics changes from block to block. On Apache Kafka a hop "
                  "does not cost more as the topics fill; the first blocks are slower while the new broker's JVM "
                  "warms up. Tansu's figures, which grow, are in the side-by-side table.", ""]
    else:
        lines += ["", "Nothing but the amount of data in the topics changes from block to block; that is why every "
                  "streams phase above runs on a broker of its own. A production Kafka keeps a hop's cost "
                  "independent of how much a topic holds.", ""]
    return lines


def _cpu_table(result: BenchResult) -> list[str]:
    """Where the machine's CPU went in each phase, in cores (sampled from /proc)."""
    phases = []
    if result.throughput is not None and result.throughput.cores:
        phases.append(("throughput burst", result.throughput.cores))
    phases += [(f"{s.rate:,} reports/s", s.cores) for s in result.latency if s.cores]
    if not phases:
        return []
    out = [f"CPU used in each phase, in cores of the machine's {result.machine.cores} (*everything else*: processes "
           "that are not the benchmark's — the kernel, and on a shared machine other people's work):", "",
           "| phase | " + " | ".join(ROLES) + " | total |", "|---|" + "---:|" * (len(ROLES) + 1)]
    for name, cores in phases:
        out.append(f"| {name} | " + " | ".join(f"{cores.get(r, 0.0):.2f}" for r in ROLES)
                   + f" | {sum(cores.values()):.2f} |")
    return out + [""]


def _latency_analysis(result: BenchResult) -> list[str]:
    out = ["**Where the time goes.**"]
    for s in result.latency:
        if s.skipped:
            continue
        if not s.latencies_ms:
            out.append(f"- At {s.rate:,}/s: no order at all within the wait. Meanwhile the worker used "
                       f"{s.worker_cores:.2f} cores and the broker {s.cores.get('broker', float('nan')):.2f}: the "
                       "worker was waiting, not computing — on the broker, which was as busy as the worker or busier "
                       "in every phase (see the CPU table), or on its own flow control; its log is in "
                       f"`run/bench/rate-{s.rate}/worker.log`.")
            continue
        pipe50 = s.quantile(0.5, s.pipe_ms)
        worker50 = s.worker_ms.get("p50", float("nan"))
        total50 = s.quantile(0.5)
        behind = s.achieved_rate < 0.95 * s.rate
        inside = "more than 10 s" if math.isinf(worker50) else f"≈ {_ms(worker50)} ms"
        intake50 = s.intake_ms.get("p50", float("nan"))
        waited = "more than 10 s" if math.isinf(intake50) else f"≈ {_ms(intake50)} ms"
        text = (f"At {s.rate:,}/s: p50 {_ms(total50)} ms end to end, of which the report waited {waited} from its "
                f"publication to intake and the worker's own intake → order took {inside}; the raw pipe's two "
                f"hops take {_ms(pipe50)} ms at p50, so "
                f"one hop is ≈ {_ms(pipe50 / 2 if pipe50 == pipe50 else pipe50)} ms. The worker used "
                f"{s.worker_cores:.2f} cores meanwhile, the broker {s.cores.get('broker', float('nan')):.2f}, the "
                f"machine {s.machine_cores:.2f}.")
        p99 = s.quantile(0.99)
        if p99 > 10 * max(total50, 1e-9):
            text += (f" The tail (p99 {_ms(p99)} ms) is queueing: when reports come faster than the worker takes "
                     "them, each waits for those before it.")
        if s.machine_cores >= 0.85 * result.machine.cores and p99 > 2 * max(total50, 1e-9):
            text += (f" The machine was close to saturation ({s.machine_cores:.2f} of its {result.machine.cores} "
                     "cores): worker, broker, PostgreSQL and the benchmark's own clients share them, so reports "
                     "wait for CPU as much as for each other.")
        if behind:
            text += f" The generator itself fell behind (achieved {s.achieved_rate:,.0f}/s)."
        out.append(f"- {text}")
    if result.floor is not None and result.step(result.floor_for) is not None:
        s, f = result.step(result.floor_for), result.floor
        floor99, ours99 = _quantile(f.latencies_ms, 0.99), s.quantile(0.99)
        text = (
            f"- **The broker's share.** At {s.rate:,} reports/s the broker took in {s.broker_records_per_s:,.0f} "
            f"records/s ({s.broker_records / max(1, s.sent):.1f} per report: the report, its work-log entry, the "
            "incident's events, the order, the crew's answer and its work-log entry). The raw pipe alone, on a new "
            f"broker, made to move as many ({f.sent / s.seconds:,.0f} piped records/s, each produced and read twice), "
            f"took p50 {_ms(_quantile(f.latencies_ms, 0.5))} / p99 {_ms(floor99)} ms for its two hops, with no "
            f"worker at all (read back: {len(f.latencies_ms):,} of {f.sent:,}); the report path took p99 "
            f"{_ms(ours99)} ms.")
        if s.rate == TARGET_P99_RATE and floor99 >= TARGET_P99_MS:
            text += (f" At this record volume a bare consume → produce pipe through this broker is past the "
                     f"{TARGET_P99_MS:g} ms target by itself: on this machine the target is out of reach of any "
                     "worker that moves these records through this broker (7 of the 9 per report are the contract's: "
                     "the report, the order, four incident events, the crew's answer). The broker is the busiest "
                     "process of the run (see the CPU table); the target needs a production Kafka on machines of its "
                     "own.")
        out.append(text)
    out += ["- On Tansu a fetch is answered when its wait expires (`PATROL_FETCH_MAX_WAIT_MS`=5), so each hop costs at "
            "least a few milliseconds however idle the machine; Apache Kafka answers a waiting fetch as soon as a "
            "record arrives. Two fetches are the floor of the report → order "
            "path (report → intake, order → reader). The work-log entry in between costs a produce round trip, "
            "not a fetch: the district core takes the worker's own entries when the broker acknowledges them, "
            "at the offset the acknowledgement gives (streams/consumer_loop.py, `follow`).",
            "- Intake (reports and unit events) and the district core run as one plain aiokafka consumer loop "
            "inside the faust worker (`streams/consumer_loop.py`): batches in, outputs sent as they are decided, "
            "offsets committed in the background once delivered. With faust agents on that path (one message at a "
            "time across faust's consumer thread; BENCHMARKS.md as of commit d45c6b2) the same benchmark measured "
            "140 reports/s, p99 858 ms at 100/s and 38.5 s at 500/s, and no order at all at 1,000/s.", ""]
    return out


def _cost_analysis(cost: DecisionCost) -> list[str]:
    first, last = cost.rows[0], cost.rows[-1]
    tail = cost.tail_exponent()
    scan_wins = [r.units for r in cost.rows if r.brute_us and r.mean("brute_us") < r.mean("search_us")]
    out = [
        f"From {first.units:,} to {last.units:,} units ({last.units / first.units:,.0f}× as many) the time per "
        f"assignment goes from {first.mean('apply_us'):,.0f} µs to {last.mean('apply_us'):,.0f} µs "
        f"({last.mean('apply_us') / max(first.mean('apply_us'), 1e-9):,.1f}×). The search looks only at the free "
        "units that may fill the place (an index per authority), walks rings of ~500 m cells outward and stops when "
        "no farther ring can hold a faster unit; in a sparse index it goes over the occupied cells instead of the "
        "empty rings. What grows is the number of units in the rings next to the incident, every one of which is "
        "priced, because the cells are a fixed size"
        + (f"; at {', '.join(f'{u:,}' for u in scan_wins)} units the full scan was faster than the grid."
           if scan_wins else "."),
    ]
    if len(cost.rows) >= 2:
        out.append(
            f"Between the two largest sizes the growth is ∝ units^{tail:.2f}"
            + (" — close to linear: past that density the grid no longer saves work in proportion, only a constant "
               "factor over the full scan; cells that shrink with the density would keep it flat." if tail > 0.7
               else "."))
    return out + [""]


def _quality_analysis(result: BenchResult) -> list[str]:
    out = ["**Reading the comparison.**"]
    for day in result.quality:
        ours, closest, best = day.row("ours"), day.row("closest-idle"), day.row("hindsight")
        verdict = ("fewer late arrivals than" if ours.late_sla < closest.late_sla else
                   "as many late arrivals as" if ours.late_sla == closest.late_sla else "more late arrivals than")
        out.append(
            f"- {day.intensity:g}× day: ours has {verdict} closest-idle under the SLA rule "
            f"({ours.late_sla} vs {closest.late_sla}) and {ours.late_report} vs {closest.late_report} counted from "
            f"the report; priority-1 incidents reached within 15 minutes: {ours.p1_within_15min} of {ours.p1} vs "
            f"{closest.p1_within_15min}; work spread across streets: CV {ours.workload_cv:.3f} vs "
            f"{closest.workload_cv:.3f}. An incident waited {_min(ours.mean_wait_s)} min on average for its first "
            f"dispatch (closest-idle {_min(closest.mean_wait_s)}): the day keeps the brigade busy, and queueing, "
            f"not the choice among free units, makes most of the time to arrival. Hindsight: {best.late_sla} late "
            f"(SLA), {best.late_report} from the report.")
    out += [
        "- Most of ours' gain is the queue: a unit that comes free takes, of the most urgent queued incidents, "
        "one it can still reach within the arrive limit (the earliest promise to the citizen first) rather than "
        "the oldest, which in a busy day is as often as not across the district and late whatever happens; "
        "closest-idle serves its queue oldest first. Priority stays strict: a priority-1 never waits behind a "
        "lesser task.",
        "- Pre-emption pulls a unit off a lower-priority task for a priority-1 incident; the bumped task keeps "
        "the arrive limit of its first dispatch, so it often arrives late: the trade buys priority-1 arrivals "
        "within 15 minutes at the cost of some late lesser tasks (the SLA count weighs a late parking complaint "
        "the same as a late fight). Balancing takes a unit up to 60 s or 15 % slower when its street can spare "
        "it better, and only when that unit still arrives within the limit.",
        "- Mean and p90 arrival are over the incidents reached: a plan that reaches more of the incidents that "
        "waited long (hindsight on the busier day) shows a higher mean for it; the late shares count every incident.",
        "",
    ]
    return out


# ============================================================================ plots


def plots(result: BenchResult, directory: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written = []

    if result.latency:
        fig, ax = plt.subplots(figsize=(8, 5))
        for i, s in enumerate(result.latency):
            colour = f"C{i}"
            for values, style, label in ((s.latencies_ms, "-", f"report → order, {s.rate}/s"),
                                         (s.pipe_ms, ":", f"raw pipe, {s.rate}/s")):
                if values:
                    ordered = sorted(values)
                    ax.step(ordered, [(k + 1) / len(ordered) for k in range(len(ordered))], style, color=colour,
                            where="post", label=label)
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms, log scale)")
        ax.set_ylabel("share of reports (cumulative)")
        ax.axvline(TARGET_P99_MS, color="grey", lw=0.8, ls="--")
        ax.axhline(0.99, color="grey", lw=0.8, ls="--")
        ax.set_title("Report published → dispatch order read, per offered rate")
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        written.append(_save(fig, directory / "latency.png"))

    if result.cost is not None:
        c = result.cost
        fig, ax = plt.subplots(figsize=(7, 5))
        units = [r.units for r in c.rows]
        for what, label, style in (("apply_us", "whole decision (apply), mean", "o-"),
                                   ("search_us", "grid search, mean", "s-"),
                                   ("brute_us", "baseline: full scan, mean", "^--")):
            ax.plot(units, [r.mean(what) for r in c.rows], style, label=label)
        ax.plot(units, [_quantile(r.apply_us, 0.99) for r in c.rows], "o:", label="whole decision, p99")
        # the fitted growth through the geometric mean of the apply times
        e = c.exponent()
        gx = math.exp(sum(math.log(u) for u in units) / len(units))
        gy = math.exp(sum(math.log(max(r.mean("apply_us"), 1e-9)) for r in c.rows) / len(units))
        ax.plot(units, [gy * (u / gx) ** e for u in units], color="grey", lw=0.8,
                label=f"fit: ∝ units^{e:.2f}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("units in the district")
        ax.set_ylabel("µs per assignment")
        ax.set_title("Decision cost as the district grows")
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        written.append(_save(fig, directory / "decision_cost.png"))

    if result.quality:
        fig, axes = plt.subplots(1, 4, figsize=(15, 4.5))
        policies = [r.policy for r in result.quality[0].rows]
        width = 0.8 / len(policies)
        figures = (("mean arrival (min)", lambda r: r.mean_arrival_s / 60),
                   ("p90 arrival (min)", lambda r: r.p90_arrival_s / 60),
                   ("late, SLA rule (%)", lambda r: 100 * r.late_share),
                   ("workload spread across streets (CV)", lambda r: r.workload_cv))
        for ax, (title, value) in zip(axes, figures):
            for k, policy in enumerate(policies):
                xs = [d + (k - (len(policies) - 1) / 2) * width for d in range(len(result.quality))]
                ax.bar(xs, [value(day.row(policy)) for day in result.quality], width, label=policy, color=f"C{k}")
            ax.set_xticks(range(len(result.quality)), [f"{d.intensity:g}× day" for d in result.quality])
            ax.set_title(title, fontsize=10)
            ax.grid(True, axis="y", alpha=0.3)
        axes[0].legend(fontsize=8)
        fig.suptitle("Dispatch quality on the simulated day: ours vs closest-idle vs hindsight")
        written.append(_save(fig, directory / "quality.png"))

    if result.throughput is not None:
        t = result.throughput
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.bar(["reports → PostgreSQL\n(one worker)", "raw consume → produce\npipe"], [t.rate, t.pipe_rate],
               color=["C0", "C7"])
        ax.set_ylabel("per second")
        ax.set_title(f"Throughput (ratio {t.ratio:.3f})")
        ax.grid(True, axis="y", alpha=0.3)
        written.append(_save(fig, directory / "throughput.png"))
    return written


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


# ============================================================================ the whole run


def print_figures(console: Console, result: BenchResult) -> None:
    table = Table(title="Targets")
    table.add_column("target")
    table.add_column("measured")
    table.add_column("")
    for target, measured, met in result.targets():
        table.add_row(target, measured, {True: "[green]met", False: "[red]not met", None: "[yellow]not measured"}[met])
    console.print(table)


def _print_section(console: Console, result: BenchResult, section: str) -> None:
    if section == "streams" and result.throughput is not None:
        t = result.throughput
        table = Table(title="1. Throughput")
        for column in ("", "records", "seconds", "per second"):
            table.add_column(column, justify="right" if column else "left")
        table.add_row("reports → PostgreSQL", f"{t.reports:,}", f"{t.seconds:.2f}", f"{t.rate:,.0f}")
        table.add_row("reports → orders", f"{t.orders:,}", f"{t.orders_seconds:.2f}", f"{t.orders_rate:,.0f}")
        table.add_row("raw pipe", f"{t.pipe_records:,}", f"{t.pipe_seconds:.2f}", f"{t.pipe_rate:,.0f}")
        table.add_row("ratio", "", "", f"{t.ratio:.3f}")
        console.print(table)
        table = Table(title="2. Latency, report → order (ms)")
        for column in ("offered/s", "achieved/s", "orders", "p50", "p95", "p99", "to intake p50/p99", "worker p50/p99",
                       "pipe p50/p99"):
            table.add_column(column, justify="right")
        for s in result.latency:
            if s.skipped:
                table.add_row(str(s.rate), s.skipped)
                continue
            table.add_row(str(s.rate), f"{s.achieved_rate:,.0f}", f"{len(s.latencies_ms):,}/{s.sent:,}",
                          _ms(s.quantile(0.5)), _ms(s.quantile(0.95)), _ms(s.quantile(0.99)),
                          f"{_ms(s.intake_ms.get('p50'))}/{_ms(s.intake_ms.get('p99'))}",
                          f"{_ms(s.worker_ms.get('p50'))}/{_ms(s.worker_ms.get('p99'))}",
                          f"{_ms(s.quantile(0.5, s.pipe_ms))}/{_ms(s.quantile(0.99, s.pipe_ms))}")
        console.print(table)
    elif section == "cost" and result.cost is not None:
        table = Table(title=f"3. Decision cost (µs per assignment; growth ∝ units^{result.cost.exponent():.2f})")
        for column in ("units", "apply mean", "apply p99", "grid search", "full scan"):
            table.add_column(column, justify="right")
        for r in result.cost.rows:
            table.add_row(f"{r.units:,}", f"{r.mean('apply_us'):,.0f}", f"{_quantile(r.apply_us, 0.99):,.0f}",
                          f"{r.mean('search_us'):,.0f}", f"{r.mean('brute_us'):,.0f}")
        console.print(table)
    elif section == "quality":
        for day in result.quality:
            table = Table(title=f"4. Dispatch quality, {day.intensity:g}× day ({day.reports} matters)")
            for column in ("policy", "reached", "mean min", "p90 min", "late (SLA)", "late from report", "P1 ≤ 15 min",
                           "spread CV"):
                table.add_column(column, justify="right" if column != "policy" else "left")
            for r in day.rows:
                table.add_row(r.policy, f"{r.reached}/{r.incidents}", _min(r.mean_arrival_s), _min(r.p90_arrival_s),
                              _pct(r.late_share), _pct(r.late_report_share), f"{r.p1_within_15min}/{r.p1}",
                              f"{r.workload_cv:.3f}")
            console.print(table)
    elif section == "memory" and result.memory is not None:
        mem = result.memory
        table = Table(title="5. Memory of a district core")
        for column in ("per", "traced", "resident"):
            table.add_column(column, justify="right" if column != "per" else "left")
        for key, label in (("per_unit", "unit"), ("per_open_incident", "open incident"),
                           ("per_closed_incident", "closed incident"), ("per_forgotten_incident", "a day later")):
            table.add_row(label, _kb(mem.traced[key]), _kb(mem.resident[key]))
        console.print(table)
    elif section == "recovery" and result.recovery is not None:
        table = Table(title="6. Recovery after the owner's SIGKILL (s)")
        for column in ("work log", "snapshot", "entries", "detection", "recovery", "replayed"):
            table.add_column(column, justify="right")
        for t in result.recovery.takeovers:
            table.add_row(f"{t.days:g} days", "yes" if t.snapshot else "no", f"{t.entries:,}", f"{t.detection_s:.1f}",
                          f"{t.recovery_s:.2f}", f"{t.replayed:,}")
        console.print(table)


SECTIONS = ("streams", "cost", "quality", "memory", "recovery")


def run_bench(settings: Settings, console: Console, *, quick: bool = False, out: Path = Path("BENCHMARKS.md"),
              command: str = "patrol bench", sections: tuple[str, ...] = SECTIONS) -> BenchResult:
    """Run the benchmarks, print their figures, write `out` and the plots beside it (benchmarks/*.png)."""
    sizes = QUICK if quick else FULL
    catalogue, geography, roster = reference(settings)
    result = BenchResult(command=command, quick=quick, machine=Machine.describe())
    with Steps(console) as steps:
        worker_memory = {}
        if "streams" in sections:
            for broker in brokers_to_run(settings):
                started = time.monotonic()
                on = settings.with_overrides(embedded_broker=broker)
                throughput, latency, memory = stream_benchmarks(on, sizes, catalogue, geography, steps)
                result.brokers.append(BrokerRun(broker, throughput, latency, broker_growth(on, sizes, steps)))
                result.seconds[f"streams on {broker}"] = time.monotonic() - started
                if len(result.brokers) == 1:  # the detailed sections describe the first broker
                    result.throughput, result.latency, worker_memory = throughput, latency, memory
                    result.growth = result.brokers[0].growth
                    # at the target rate, or the highest measured (a quick run has no 500/s)
                    measured = [s for s in result.latency if s.broker_records]
                    target = result.step(TARGET_P99_RATE) or (max(measured, key=lambda s: s.rate) if measured else None)
                    if target is not None and target.broker_records:
                        result.floor, result.floor_for = broker_floor(on, target, steps), target.rate
            _print_section(console, result, "streams")
        if "cost" in sections:
            started = time.monotonic()
            result.cost = decision_cost(catalogue, geography, sizes.cost_units, sizes.cost_samples, steps)
            result.seconds["decision cost"] = time.monotonic() - started
            _print_section(console, result, "cost")
        if "quality" in sections:
            started = time.monotonic()
            for intensity in sizes.day_intensities:
                day = dispatch_quality(catalogue, geography, roster, hours=sizes.day_hours, intensity=intensity,
                                       steps=steps)
                if not quick:
                    day.sweep = policy_sweep(catalogue, geography, roster, hours=sizes.day_hours, intensity=intensity,
                                             seeds=tuple(range(1, 9)), steps=steps)
                result.quality.append(day)
            result.seconds["quality"] = time.monotonic() - started
            _print_section(console, result, "quality")
        if "memory" in sections:
            started = time.monotonic()
            result.memory = memory_footprint(sizes.memory_units, sizes.memory_incidents, steps)
            result.memory.worker = worker_memory
            result.seconds["memory"] = time.monotonic() - started
            _print_section(console, result, "memory")
        if "recovery" in sections:
            started = time.monotonic()
            result.recovery = recovery_benchmark(settings, catalogue, geography, roster,
                                                 Path(settings.data_dir).resolve() / "bench" / "recovery",
                                                 ages=sizes.recovery_days, baseline=sizes.recovery_baseline,
                                                 steps=steps)
            result.seconds["recovery"] = time.monotonic() - started
            _print_section(console, result, "recovery")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result.plots = plots(result, out.parent / "benchmarks")
    out.write_text(markdown(result), encoding="utf-8")
    print_figures(console, result)
    console.print(f"wrote {out} and {len(result.plots)} plots in {out.parent / 'benchmarks'}")
    return result


def _main(argv: list[str]) -> None:
    """Children of the benchmark: `pipe SOURCE TARGET GROUP READY_FILE FETCH_WAIT_MS` (the broker from the
    PATROL_* environment) and `memory UNITS INCIDENTS traced|rss`."""
    if argv[:1] == ["pipe"]:
        source, target, group, ready, fetch_wait = argv[1:6]
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(raw_pipe(Settings(), source, target, group, Path(ready), int(fetch_wait)))
    elif argv[:1] == ["memory"]:
        print(json.dumps(memory_probe(int(argv[1]), int(argv[2]), argv[3] == "traced")))
    else:
        raise SystemExit(f"usage: python -m streams.bench pipe|memory …; got {shlex.join(argv)}")


if __name__ == "__main__":
    _main(sys.argv[1:])
