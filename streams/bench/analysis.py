"""The analysis texts of BENCHMARKS.md: the brokers in words, the growth and CPU tables, and what the latency,
decision-cost and quality figures mean (used by bench_report.markdown).
"""

from __future__ import annotations

import math

from streams.bench.cpu import ROLES
from streams.bench.results import (
    FULL,
    QUICK,
    TARGET_P99_MS,
    TARGET_P99_RATE,
    BenchResult,
    DecisionCost,
    _min,
    _ms,
    _quantile,
)


def _first_broker(result: BenchResult) -> str:
    return result.brokers[0].label if result.brokers else "–"


def _brokers_in_words(result: BenchResult) -> str:
    names = [r.label for r in result.brokers]
    return " and, separately, ".join(names) if names else "none (the streams benchmarks did not run)"


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
            "at the offset the acknowledgement gives (streams/runtime/consumer_loop.py, `follow`).",
            "- Intake (reports and unit events) and the district core run as one plain aiokafka consumer loop "
            "inside the faust worker (`streams/runtime/consumer_loop.py`): batches in, outputs sent as they are decided, "
            "offsets committed in the background once delivered. With faust agents on that path (one message at a "
            "time across faust's consumer thread, measured by an earlier release of this benchmark) the same benchmark measured "
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
