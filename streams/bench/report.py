"""BENCHMARKS.md: the markdown report of a benchmark run.
"""

from __future__ import annotations

from processors.district import CLOSED_KEPT
from streams.bench.analysis import (
    _brokers_in_words,
    _cost_analysis,
    _cpu_table,
    _first_broker,
    _growth_table,
    _latency_analysis,
)
from streams.bench.brokers import side_by_side
from streams.bench.profile import profile_markdown
from streams.bench.quality_report import quality_markdown
from streams.bench.recovery import recovery_markdown
from streams.bench.results import BenchResult, _kb, _met, _ms, _quantile, _ratio


def markdown(result: BenchResult) -> str:
    m = result.machine
    lines = [
        "# Benchmarks",
        "",
        "Written by `patrol bench` (`streams/bench/suite.py`); every figure below was measured in the run described here, "
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
        "## Targets",
        "",
        "| target | measured | |",
        "|---|---|---|",
    ]
    for target, measured, met in result.targets():
        lines.append(f"| {target} | {measured} | {_met(met)} |")
    lines.append("")
    lines += side_by_side(result.brokers)

    lines += _throughput(result)
    lines += _latency(result)
    lines += _cost(result)
    if result.quality:
        lines += quality_markdown(result.quality, measured=f"`{result.command}`, {m.date}, "
                                  f"{result.seconds.get('quality', 0):,.0f} s")

    lines += _memory(result)
    if result.recovery is not None:
        lines += recovery_markdown(result.recovery)
    if result.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in result.notes] + [""]
    return "\n".join(lines)


def _throughput(result: BenchResult) -> list[str]:
    """Section 1: the burst against the raw pipe, CPU and the profile."""
    t = result.throughput
    if t is None:
        return []
    lines: list[str] = []
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

    return lines


def _latency(result: BenchResult) -> list[str]:
    """Section 2: latency at each offered rate, the broker's growth and floor, CPU."""
    if not result.latency:
        return []
    lines: list[str] = []
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

    return lines


def _cost(result: BenchResult) -> list[str]:
    """Section 3: the district core's decision cost against a full scan."""
    c = result.cost
    if c is None:
        return []
    lines: list[str] = []
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

    return lines


def _memory(result: BenchResult) -> list[str]:
    """Section 5: memory per unit and incident, in a fresh interpreter and in the real worker."""
    mem = result.memory
    if mem is None:
        return []
    lines: list[str] = []
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
    return lines
