"""The end-of-day report: what the audit trail in PostgreSQL says happened, printed and written with plots.

Every figure comes from rows the worker wrote (events, orders, escalations, dead
letters), never from the simulator's intentions. Durations in the audit trail
are wall-clock seconds of a compressed day; they are multiplied back by the
speed-up to read as the city's minutes.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import asyncpg
from rich.console import Console
from rich.table import Table

DOMAINS = ("public_security", "traffic", "city_management")
FIFTEEN_MINUTES_S = 900


@dataclass
class DayReport:
    speedup: float
    incidents: int = 0
    merged: int = 0
    dead_letters: Counter = field(default_factory=Counter)
    orders: int = 0
    reassigned: Counter = field(default_factory=Counter)
    escalations: Counter = field(default_factory=Counter)  # (level, reason)
    closed: int = 0
    # resolved by their units, awaiting the complainant's verification (核查) when the day ended
    awaiting: int = 0
    # stage -> domain -> durations in simulated seconds
    times: dict = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    p1_incidents: int = 0
    p1_within_15min: int = 0
    # street -> [met, missed]
    compliance: dict = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    street_incidents: Counter = field(default_factory=Counter)
    street_units: Counter = field(default_factory=Counter)

    def percentile(self, stage: str, domain: str, q: float) -> float | None:
        values = sorted(self.times[stage][domain])
        if not values:
            return None
        return values[min(len(values) - 1, int(q * len(values)))]


async def gather(database_url: str, report_prefix: str, since: datetime, speedup: float,
                 roster: list[dict]) -> DayReport:
    """What became of the day's reports. The worker ran on the day's own clock (`patrol up`), so every duration
    it recorded is in simulated seconds already."""
    r = DayReport(speedup=speedup)
    connection = await asyncpg.connect(database_url)
    try:
        incidents = await connection.fetch(
            "SELECT incident_id, priority, street, status FROM incidents WHERE report_id LIKE $1", report_prefix + "%")
        ids = [row["incident_id"] for row in incidents]
        r.incidents = len(ids)
        r.closed = sum(1 for row in incidents if row["status"] == "closed")
        r.awaiting = sum(1 for row in incidents if row["status"] == "awaiting_verification")
        street_of = {row["incident_id"]: row["street"] for row in incidents}
        r.street_incidents = Counter(street_of.values())
        p1 = {row["incident_id"] for row in incidents if row["priority"] == 1}
        r.p1_incidents = len(p1)
        events = await connection.fetch(
            "SELECT incident_id, type, data FROM incident_events WHERE incident_id = ANY($1::text[])", ids)
        for e in events:
            data = json.loads(e["data"])
            kind, domain = e["type"], data.get("domain")
            street = street_of[e["incident_id"]]
            if kind == "report_merged":
                r.merged += 1
            elif kind == "reassigned":
                r.reassigned[data.get("reason", "?")] += 1
            elif kind == "dispatched":
                r.orders += len(data.get("units", []))
            if "since_order_s" in data:
                r.times["acknowledge"][domain].append(data["since_order_s"])
            if "since_dispatch_s" in data:
                r.times["arrive"][domain].append(data["since_dispatch_s"])
                if e["incident_id"] in p1 and data["since_created_s"] <= FIFTEEN_MINUTES_S:
                    r.p1_within_15min += 1
            if kind == "awaiting_verification" and "resolved_s" in data:
                # resolved when the units are done, not when the complainant is asked
                r.times["resolve"][domain].append(data["resolved_s"])
            for flag in ("ack_on_time", "arrive_on_time", "resolve_on_time"):
                # the resolve limit was judged when the incident awaited verification; its closing says it again
                if data.get(flag) is True and kind != "closed":
                    r.compliance[street][0] += 1
        escalations = await connection.fetch(
            "SELECT level, reason, street FROM escalations WHERE incident_id = ANY($1::text[])", ids)
        for row in escalations:
            r.escalations[(row["level"], row["reason"])] += 1
            if row["reason"] != "no_eligible_unit":
                r.compliance[row["street"]][1] += 1
        letters = await connection.fetch(
            "SELECT reason, count(*) AS n FROM dead_letters WHERE received_at >= $1 GROUP BY reason", since)
        r.dead_letters = Counter({row["reason"]: row["n"] for row in letters})
    finally:
        await connection.close()
    r.street_units = Counter(u["home_street"] for u in roster)
    return r


def print_report(console: Console, r: DayReport) -> None:
    counts = Table(title="The day in numbers")
    counts.add_column("what")
    counts.add_column("count", justify="right")
    counts.add_row("incidents created", str(r.incidents))
    counts.add_row("reports merged into an open incident", str(r.merged))
    counts.add_row("units dispatched", str(r.orders))
    counts.add_row("incidents closed", str(r.closed))
    counts.add_row("resolved, awaiting verification", str(r.awaiting))
    for reason, n in sorted(r.reassigned.items()):
        counts.add_row(f"reassigned ({reason})", str(n))
    for (level, reason), n in sorted(r.escalations.items()):
        counts.add_row(f"escalation level {level} ({reason})", str(n))
    for reason, n in sorted(r.dead_letters.items()):
        counts.add_row(f"dead letter: {reason}", str(n))
    share = f"{100 * r.p1_within_15min / r.p1_incidents:.0f}%" if r.p1_incidents else "–"
    counts.add_row("priority-1 incidents reached within 15 min", f"{share} of {r.p1_incidents}")
    console.print(counts)

    times = Table(title="Response times by domain (minutes, p50 / p90)")
    times.add_column("stage")
    for domain in DOMAINS:
        times.add_column(domain, justify="right")
    for stage in ("acknowledge", "arrive", "resolve"):
        times.add_row(stage, *(_p50_p90(r, stage, d) for d in DOMAINS))
    console.print(times)

    streets = Table(title="Streets: workload and SLA compliance")
    for column in ("street", "incidents", "units", "incidents per unit", "limits met", "compliance"):
        streets.add_column(column, justify="left" if column == "street" else "right")
    for street in sorted(set(r.street_incidents) | set(r.street_units)):
        met, missed = r.compliance[street]
        units = r.street_units.get(street, 0)
        streets.add_row(street, str(r.street_incidents.get(street, 0)), str(units),
                        f"{r.street_incidents.get(street, 0) / units:.1f}" if units else "–",
                        f"{met}/{met + missed}", f"{100 * met / (met + missed):.0f}%" if met + missed else "–")
    console.print(streets)


def _p50_p90(r: DayReport, stage: str, domain: str) -> str:
    p50, p90 = r.percentile(stage, domain, 0.5), r.percentile(stage, domain, 0.9)
    if p50 is None:
        return "–"
    return f"{p50 / 60:.1f} / {p90 / 60:.1f}"


def write_report(r: DayReport, directory: Path, title: str) -> Path:
    """report.md with PNG plots beside it; returns the Markdown file's path."""
    import logging

    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, stage in zip(axes, ("acknowledge", "arrive", "resolve")):
        data = [[v / 60 for v in r.times[stage][d]] for d in DOMAINS]
        if any(data):
            ax.boxplot([d or [0] for d in data], showfliers=False)
            ax.set_xticks(range(1, len(DOMAINS) + 1), [d.replace("_", "\n") for d in DOMAINS])
        ax.set_title(f"time to {stage}")
        ax.set_ylabel("minutes")
    fig.tight_layout()
    fig.savefig(directory / "response_times.png", dpi=90)
    plt.close(fig)

    streets = sorted(set(r.street_incidents) | set(r.street_units))
    fig, ax = plt.subplots(figsize=(12, 4))
    per_unit = [r.street_incidents.get(s, 0) / max(1, r.street_units.get(s, 0)) for s in streets]
    compliance = [100 * r.compliance[s][0] / sum(r.compliance[s]) if sum(r.compliance[s]) else 0 for s in streets]
    ax.bar(streets, per_unit, color="#4a7ab0")
    ax.set_ylabel("incidents per unit on the roster")
    ax2 = ax.twinx()
    ax2.plot(streets, compliance, "o-", color="#c0504d")
    ax2.set_ylabel("SLA limits met (%)")
    ax2.set_ylim(0, 105)
    ax.set_title("Workload and compliance by street")
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    fig.savefig(directory / "street_workload.png", dpi=90)
    plt.close(fig)

    lines = [f"# {title}", "", f"Durations are simulated time (the day ran {r.speedup:g}× faster than the clock).", "",
             "| what | count |", "|---|---:|",
             f"| incidents created | {r.incidents} |", f"| reports merged | {r.merged} |",
             f"| units dispatched | {r.orders} |", f"| incidents closed | {r.closed} |",
             f"| resolved, awaiting verification | {r.awaiting} |"]
    lines += [f"| reassigned ({k}) | {n} |" for k, n in sorted(r.reassigned.items())]
    lines += [f"| escalation level {lv} ({why}) | {n} |" for (lv, why), n in sorted(r.escalations.items())]
    lines += [f"| dead letter: {k} | {n} |" for k, n in sorted(r.dead_letters.items())]
    share = f"{100 * r.p1_within_15min / r.p1_incidents:.0f}%" if r.p1_incidents else "–"
    lines += [f"| priority-1 reached within 15 min | {share} of {r.p1_incidents} |", "",
              "## Response times (minutes, p50 / p90)", "", "| stage | " + " | ".join(DOMAINS) + " |",
              "|---|" + "---:|" * len(DOMAINS)]
    lines += [f"| {s} | " + " | ".join(_p50_p90(r, s, d) for d in DOMAINS) + " |"
              for s in ("acknowledge", "arrive", "resolve")]
    lines += ["", "![response times](response_times.png)", "", "## Streets", "",
              "| street | incidents | units | per unit | limits met | compliance |", "|---|---:|---:|---:|---:|---:|"]
    for s in streets:
        met, missed = r.compliance[s]
        units = r.street_units.get(s, 0)
        lines.append(f"| {s} | {r.street_incidents.get(s, 0)} | {units} | "
                     f"{r.street_incidents.get(s, 0) / units:.1f} | {met}/{met + missed} | "
                     f"{(f'{100 * met / (met + missed):.0f}%') if met + missed else '–'} |" if units else
                     f"| {s} | {r.street_incidents.get(s, 0)} | 0 | – | {met}/{met + missed} | – |")
    lines += ["", "![street workload](street_workload.png)", ""]
    path = directory / "report.md"
    path.write_text("\n".join(lines))
    return path

