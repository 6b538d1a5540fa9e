"""What each benchmark runs at and what it yields: the sizes (FULL, QUICK), the targets, the dataclasses of the
figures (BenchResult and its parts), and the quantile, slope and value-formatting helpers they use. They live
here, not in streams/bench/suite.py, so that every benchmark module can import them without an import cycle.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from streams.bench.brokers import BrokerRun, broker_targets
from streams.bench.profile import Profile
from streams.bench.quality_results import QualityDay, QualityRow, quality_targets  # noqa: F401
# the one quantile of the bench: linear between closest ranks (numpy's default)
from streams.bench.quality_results import quantile as _quantile  # noqa: F401
from streams.bench.recovery import RecoveryBench, recovery_targets


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
    quality_seeds: int = 20  # paired days at each intensity of the quality phase


FULL = Sizes(stream_units=5000, throughput_reports=4000, pipe_records=30000, rates=(100, 500, 1000),
             rate_seconds=10.0, drain_seconds=60.0, pipe_rate_seconds=5.0, cost_units=(100, 1000, 10000, 50000), cost_samples=1000,
             day_hours=24.0, day_intensities=(1.0, 2.0), memory_units=4000, memory_incidents=2000)
QUICK = Sizes(stream_units=600, throughput_reports=300, pipe_records=2000, rates=(50, 100), rate_seconds=2.0, drain_seconds=20.0,
              pipe_rate_seconds=1.0, cost_units=(100, 1000, 3000), cost_samples=60, day_hours=4.0,
              day_intensities=(1.0,), memory_units=2000, memory_incidents=1000, growth_rate=200, growth_seconds=1.0,
              growth_blocks=2, recovery_days=(0.05,), recovery_baseline=False, quality_seeds=2)

# The targets set for the pipeline, recorded next to what was measured.
TARGET_THROUGHPUT_RATIO = 0.5
TARGET_P99_RATE = 500
TARGET_P99_MS = 50.0


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
        out += quality_targets(self.quality)
        if self.recovery is not None:
            out += recovery_targets(self.recovery)
        return out


def _slope(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    if n < 2:
        return float("nan")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else float("nan")


@dataclass
class GrowthStep:
    records_before: int  # records already through the pipe's topics when this block started
    sent: int
    latencies_ms: list[float]


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
