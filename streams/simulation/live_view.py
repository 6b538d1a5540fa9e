"""The command centre's key figures in a terminal, read from a worker's /metrics: Grafana's view without Grafana."""

from __future__ import annotations

import urllib.request
from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families
from rich.columns import Columns
from rich.console import Group
from rich.panel import Panel
from rich.table import Table

DOMAINS = ("public_security", "traffic", "city_management")


class Figures:
    """One scrape of a worker's metrics, with the sums the view needs."""

    def __init__(self, exposition: str):
        self.samples: dict[str, list] = defaultdict(list)
        for family in text_string_to_metric_families(exposition):
            for sample in family.samples:
                self.samples[sample.name].append(sample)

    @classmethod
    def scrape(cls, port: int) -> "Figures":
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            return cls(response.read().decode())

    def total(self, name: str, **labels) -> float:
        return sum(s.value for s in self.samples.get(name, ())
                   if all(s.labels.get(k) == v for k, v in labels.items()))

    def by(self, name: str, label: str, **labels) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for s in self.samples.get(name, ()):
            if all(s.labels.get(k) == v for k, v in labels.items()):
                out[s.labels.get(label, "")] += s.value
        return dict(out)

    def quantile(self, histogram: str, q: float, **labels) -> float | None:
        """Like PromQL's histogram_quantile over the whole history: linear within the bucket."""
        buckets: dict[float, float] = defaultdict(float)
        for s in self.samples.get(f"{histogram}_bucket", ()):
            if all(s.labels.get(k) == v for k, v in labels.items()):
                buckets[float(s.labels["le"])] += s.value
        if not buckets or buckets[max(buckets)] == 0:
            return None
        bounds = sorted(buckets)
        rank = q * buckets[bounds[-1]]
        lower, below = 0.0, 0.0
        for bound in bounds:
            if buckets[bound] >= rank:
                if bound == float("inf"):
                    return lower
                share = (rank - below) / (buckets[bound] - below) if buckets[bound] > below else 0
                return lower + (bound - lower) * share
            lower, below = bound, buckets[bound]
        return lower


def render(f: Figures) -> Group:
    intake = Table(title="Intake", show_header=False, box=None)
    intake.add_row("reports admitted", f"{f.total('patrol_reports_total', outcome='admitted'):.0f}")
    intake.add_row("reports rejected", f"{f.total('patrol_reports_total', outcome='rejected'):.0f}")
    for reason, n in sorted(f.by("patrol_dead_letters_total", "reason").items(), key=lambda kv: -kv[1])[:5]:
        intake.add_row(f"  dead letter {reason}", f"{n:.0f}")

    incidents = Table(title="Incidents by domain")
    for column in ("domain", "open", "queued", "breaches"):
        incidents.add_column(column, justify="right" if column != "domain" else "left")
    open_ = f.by("patrol_open_incidents", "domain")
    queued = f.by("patrol_queued_incidents", "domain")
    breaches = f.by("patrol_sla_breaches_total", "domain")
    for domain in DOMAINS:
        incidents.add_row(domain, f"{open_.get(domain, 0):.0f}", f"{queued.get(domain, 0):.0f}",
                          f"{breaches.get(domain, 0):.0f}")

    units = Table(title="Units by agency")
    for column in ("agency", "free", "busy", "unavailable"):
        units.add_column(column, justify="right" if column != "agency" else "left")
    for agency in sorted(f.by("patrol_units", "agency")):
        statuses = f.by("patrol_units", "status", agency=agency)
        units.add_row(agency, *(f"{statuses.get(s, 0):.0f}" for s in ("free", "busy", "unavailable")))

    sla = Table(title="Decisions and limits", show_header=False, box=None)
    p50 = f.quantile("patrol_dispatch_decision_seconds", 0.5)
    p99 = f.quantile("patrol_dispatch_decision_seconds", 0.99)
    sla.add_row("dispatch decision p50 / p99",
                "–" if p50 is None else f"{p50 * 1000:.0f} / {p99 * 1000:.0f} ms")
    sla.add_row("orders issued", f"{f.total('patrol_dispatch_orders_total', kind='assign'):.0f}")
    for stage in ("acknowledge", "arrive", "resolve"):
        met = f.total("patrol_sla_outcomes_total", stage=stage, outcome="met")
        missed = f.total("patrol_sla_outcomes_total", stage=stage, outcome="missed")
        share = "–" if met + missed == 0 else f"{100 * met / (met + missed):.0f}%"
        sla.add_row(f"{stage} on time", f"{share} ({met:.0f} of {met + missed:.0f})")
    for level, n in sorted(f.by("patrol_sla_breaches_total", "level").items()):
        sla.add_row(f"escalations level {level}", f"{n:.0f}")

    streets = Table(title="Busiest streets")
    streets.add_column("street")
    streets.add_column("open per free unit", justify="right")
    workload = sorted(f.by("patrol_street_workload", "street").items(), key=lambda kv: -kv[1])[:6]
    for street, load in workload:
        streets.add_row(street, f"{load:.1f}")

    return Group(Columns([Panel(intake), Panel(sla)]), Columns([incidents, units, streets]))
