"""The streams benchmarks on each embedded broker, side by side in one run.

Apache Kafka is what production runs (deploy/), so its figures come first and the targets are judged on it; Tansu
is the embedded default on a machine without a JDK, and its row shows what such a machine measures. Each broker
gets the same phases (the burst, each offered rate, the broker-growth blocks), each phase on a new broker of that
kind (streams/bench/streams.py, stream_benchmarks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from streams.operations.embedded_kafka import choose_broker, kafka_version
from streams.settings import Settings

if TYPE_CHECKING:
    from streams.bench.results import GrowthStep, LatencyStep, Throughput

# Targets on Apache Kafka on the benchmark's machine
TARGET_RATE = 500  # reports/s offered for the latency targets
TARGET_P50_MS = 15.0
TARGET_P99_MS = 50.0
TARGET_BURST_PER_S = 2500.0  # one worker, reports into PostgreSQL
TARGET_CPU_OVER_FLOOR = 2.0  # worker CPU per report ÷ (raw pipe CPU per record × broker records per report)


def brokers_to_run(settings: Settings) -> list[str]:
    """Kafka then Tansu where Kafka can run (PATROL_EMBEDDED_BROKER auto or kafka); Tansu alone where it says
    tansu, or where auto finds no java and mvn."""
    first = choose_broker(settings.embedded_broker)
    return ["kafka", "tansu"] if first == "kafka" else ["tansu"]


def broker_label(broker: str) -> str:
    return f"Apache Kafka {kafka_version()}" if broker == "kafka" else "Tansu 0.6 (memory storage)"


@dataclass
class BrokerRun:
    broker: str  # "kafka" or "tansu"
    throughput: "Throughput | None" = None
    latency: list["LatencyStep"] = field(default_factory=list)
    growth: list["GrowthStep"] = field(default_factory=list)

    @property
    def label(self) -> str:
        return broker_label(self.broker)

    def step(self, rate: int) -> "LatencyStep | None":
        return next((s for s in self.latency if s.rate == rate and not s.skipped), None)


def broker_targets(run: BrokerRun) -> list[tuple[str, str, bool | None]]:
    """(target, what was measured, met) for the issue-18 targets, judged on `run`."""
    on = f" ({run.label})"
    out: list[tuple[str, str, bool | None]] = []
    t = run.throughput
    if t is not None:
        out.append((f"one worker ≥ {TARGET_BURST_PER_S:,.0f} reports/s into PostgreSQL{on}",
                    f"{t.rate:,.0f} reports/s ({t.reports:,} reports in {t.seconds:.2f} s)",
                    t.rate >= TARGET_BURST_PER_S))
        over = t.worker_ms_per_report / t.floor_ms_per_report if t.floor_ms_per_report > 0 else float("nan")
        out.append((f"worker CPU per report ≤ {TARGET_CPU_OVER_FLOOR:g} × the floor{on}",
                    f"{t.worker_ms_per_report:.2f} ms against a floor of {t.floor_ms_per_report:.2f} ms "
                    f"({over:.1f} ×; floor: the raw pipe's CPU per record × "
                    f"{t.broker_records / max(1, t.reports):.1f} broker records per report)",
                    over <= TARGET_CPU_OVER_FLOOR if over == over else None))
    s = run.step(TARGET_RATE)
    what = f"p50 ≤ {TARGET_P50_MS:g} ms and p99 ≤ {TARGET_P99_MS:g} ms, report published → order read, at {TARGET_RATE}/s{on}"
    if s is None or not s.latencies_ms:
        out.append((what, "not measured at this rate in this run", None))
    else:
        p50, p99 = s.quantile(0.5), s.quantile(0.99)
        out.append((what, f"p50 {p50:,.1f} ms, p99 {p99:,.1f} ms"
                    + (f"; {s.unanswered:,} of {s.sent:,} reports got no order" if s.unanswered else ""),
                    p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS and s.unanswered == 0))
    return out


def side_by_side(runs: list[BrokerRun]) -> list[str]:
    """The section comparing the brokers: one row each, Kafka first."""
    from streams.bench.results import _quantile  # (at call time: bench_results imports this module)

    if not runs:
        return []
    rates = sorted({s.rate for r in runs for s in r.latency})
    head = ("| broker | burst reports/s → PostgreSQL | raw pipe records/s | worker CPU ms/report | floor ms/report "
            "| × floor | " + " | ".join(f"p50 / p99 ms at {rate:,}/s" for rate in rates)
            + " | raw pipe p50 ms as the topics fill (first → last block) |")
    lines = ["## Brokers side by side", "",
             "The same streams phases on each embedded broker in this run (each phase on a new broker of that kind). "
             "*Floor*: the raw pipe's CPU per record it moved × the records the broker took in per report during "
             "the burst — what a Python Kafka client that does nothing else spends moving a report's records. "
             "Latency: report published → order read. The last column is the raw pipe alone on a new broker in "
             "consecutive blocks (section 2's growth table, for each broker): on Tansu a hop costs more as its "
             "topics fill up, which is why every phase gets a new broker.", "",
             head, "|---|" + "---:|" * (6 + len(rates))]
    for run in runs:
        t = run.throughput
        cells = [f"**{run.label}**"]
        if t is not None:
            over = t.worker_ms_per_report / t.floor_ms_per_report if t.floor_ms_per_report > 0 else float("nan")
            cells += [f"{t.rate:,.0f}", f"{t.pipe_rate:,.0f}", f"{t.worker_ms_per_report:.2f}",
                      f"{t.floor_ms_per_report:.2f}", f"{over:.1f}"]
        else:
            cells += ["–"] * 5
        for rate in rates:
            s = run.step(rate)
            cells.append(f"{s.quantile(0.5):,.1f} / {s.quantile(0.99):,.1f}" if s and s.latencies_ms else "–")
        blocks = [g for g in run.growth if g.latencies_ms]
        cells.append(f"{_quantile(blocks[0].latencies_ms, 0.5):,.1f} → {_quantile(blocks[-1].latencies_ms, 0.5):,.1f}"
                     if blocks else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]
