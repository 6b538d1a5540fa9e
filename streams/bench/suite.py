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
   policy and with closest-idle-unit, next to the capacity-relaxed ceiling (every eligible officer
   free at their post), over 20 paired days at 1× and 2× (`patrol bench --only quality --seeds N`).
5. **Memory** — bytes per unit, per open and per closed incident of a district
   core, and the real worker's resident memory.

The benchmarks always start their own embedded broker and database (never the
configured ones: a benchmark must not publish made-up reports to a real
`incident.reports`). `patrol bench` writes BENCHMARKS.md and PNG plots;
`--quick` runs every part at small sizes (for the test suite).

This module runs them (run_bench) and is the children's entry point (`python -m streams.bench.suite pipe|memory`);
the parts live beside it: bench_results (sizes, targets, result dataclasses), bench_reference (district, progress,
reference data), bench_streams and bench_pipe (1-2), bench_cost (3), bench_sim and bench_quality (4), bench_memory
(5), bench_cpu (CPU and memory of our processes), bench_recovery, bench_brokers, bench_profile, and the report
(bench_report, bench_analysis, bench_plots).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from streams.bench.brokers import BrokerRun, brokers_to_run
from streams.bench.cost import decision_cost
from streams.bench.memory import memory_footprint, memory_probe
from streams.bench.pipe import raw_pipe
from streams.bench.plots import plots
from streams.bench.quality import dispatch_quality
from streams.bench.quality_report import PRINT_COLUMNS, print_rows
from streams.bench.recovery import recovery_benchmark
from streams.bench.reference import DISTRICT as DISTRICT, T0 as T0, Steps, reference
from streams.bench.report import markdown
from streams.bench.results import (
    FULL,
    QUICK,
    TARGET_P99_RATE,
    BenchResult,
    GrowthStep as GrowthStep,
    LatencyStep as LatencyStep,
    Machine,
    Sizes as Sizes,
    Throughput as Throughput,
    _kb,
    _min,
    _ms,
    _pct,
    _quantile,
)
from streams.bench.sim import SimCrew as SimCrew, _admit as _admit, simulate_day as simulate_day
from streams.bench.streams import broker_floor, broker_growth, stream_benchmarks
from streams.settings import Settings


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
            table = Table(title=f"4. Dispatch quality, {day.intensity:g}× day ({len(day.seeds)} seeds, "
                                f"{day.reports} matters)")
            for column in PRINT_COLUMNS:
                table.add_column(column, justify="right" if column != "policy" else "left")
            for row in print_rows(day):
                table.add_row(*row)
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
              command: str = "patrol bench", sections: tuple[str, ...] = SECTIONS,
              seeds: int | None = None) -> BenchResult:
    """Run the benchmarks, print their figures, write `out` and the plots beside it (benchmarks/*.png).

    With only some `sections`, an existing `out` keeps its other sections: those run replace their own.
    `seeds` is how many paired days the quality phase plays at each intensity."""
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
            n = seeds or sizes.quality_seeds
            for intensity in sizes.day_intensities:
                result.quality.append(dispatch_quality(catalogue, geography, roster, hours=sizes.day_hours,
                                                       intensity=intensity, seeds=tuple(range(1, n + 1)), steps=steps))
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
    text = markdown(result)
    if set(sections) != set(SECTIONS) and out.exists():
        text = splice(out.read_text(encoding="utf-8"), text)
    out.write_text(text, encoding="utf-8")
    print_figures(console, result)
    console.print(f"wrote {out} and {len(result.plots)} plots in {out.parent / 'benchmarks'}")
    return result


def splice(old: str, new: str) -> str:
    """`old` with each numbered section (`## N. …`) that `new` has replaced by `new`'s; the rest of `old` stays."""
    def parts(text: str) -> dict[str, str]:
        found = {}
        for chunk in text.split("\n## ")[1:]:
            heading = chunk.split("\n", 1)[0]
            if heading[:1].isdigit():
                found[heading.split(".", 1)[0]] = "## " + chunk.rstrip("\n") + "\n"
        return found

    fresh = parts(new)
    out = old
    for number, body in parts(old).items():
        if number in fresh:
            out = out.replace(body, fresh[number])
    return out


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
        raise SystemExit(f"usage: python -m streams.bench.suite pipe|memory …; got {shlex.join(argv)}")


if __name__ == "__main__":
    _main(sys.argv[1:])
