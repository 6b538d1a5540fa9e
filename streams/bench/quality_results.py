"""The figures of benchmark 4 (dispatch quality): one policy's played day (QualityRow), the same summed over
days, the days of one intensity (QualityDay), and the quality targets they are held to."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

FIFTEEN_MINUTES_S = 900.0

# The targets of the 20-seed quality phase.
TARGET_P1_15_1X = 0.80  # priority-1 reached within 15 minutes of the report, 1× day
TARGET_P1_P90_1X_S = 22 * 60  # priority-1 p90 arrival, 1× day
TARGET_LATE_REPORT_1X = 0.43  # late from the report, 1× day
TARGET_P1_15_2X = 0.50  # priority-1 within 15 minutes, 2× day
TARGET_P34_DROP = 0.01  # within-limit share of priorities 3 and 4: at most this below the policy before


def quantile(values: list[float], q: float) -> float:
    """The bench's one quantile: linear interpolation between closest ranks (numpy's default); an infinite value
    (an incident never reached) is returned as it is rather than interpolated into."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    if math.isinf(ordered[hi]):
        return ordered[hi] if pos > lo else ordered[lo]
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


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
    # priority -> [judged, on scene within the arrive limit counted from the report]
    by_priority: dict[int, list[int]] = field(default_factory=dict)
    # priority -> [incidents, reached at all by the end of the observed time]: what starving a priority shows as
    reached_by_priority: dict[int, list[int]] = field(default_factory=dict)
    # report → first on scene of every priority-1 incident judged; never reached is infinite
    p1_arrival_s: list[float] = field(default_factory=list)
    # street -> [priority-1 incidents, reached within 15 minutes]
    p1_streets: dict[str, list[int]] = field(default_factory=dict)
    days: int = 1

    @property
    def mean_arrival_s(self) -> float:
        return sum(self.arrival_s) / len(self.arrival_s) if self.arrival_s else float("nan")

    @property
    def mean_wait_s(self) -> float:
        return sum(self.wait_s) / len(self.wait_s) if self.wait_s else float("nan")

    @property
    def p90_arrival_s(self) -> float:
        return quantile(self.arrival_s, 0.90)

    @property
    def p1_share(self) -> float:
        """Priority-1 incidents reached within 15 minutes of the report."""
        return self.p1_within_15min / self.p1 if self.p1 else float("nan")

    @property
    def p1_mean_s(self) -> float:
        reached = [a for a in self.p1_arrival_s if not math.isinf(a)]
        return sum(reached) / len(reached) if reached else float("nan")

    @property
    def p1_p90_s(self) -> float:
        """The 90th percentile of priority-1 arrival over every priority-1 incident (never reached counts as last)."""
        return quantile(self.p1_arrival_s, 0.90)

    @property
    def late_share(self) -> float:
        return self.late_sla / self.judged if self.judged else 0.0

    @property
    def late_report_share(self) -> float:
        return self.late_report / self.judged if self.judged else 0.0

    def within_share(self, priority: int) -> float:
        judged, within = self.by_priority.get(priority, (0, 0))
        return within / judged if judged else float("nan")

    def reached_share(self, priority: int) -> float:
        incidents, reached = self.reached_by_priority.get(priority, (0, 0))
        return reached / incidents if incidents else float("nan")

    @classmethod
    def merge(cls, rows: list["QualityRow"]) -> "QualityRow":
        """The same policy's days summed: counts added, samples pooled, the spread averaged over the days."""
        by_priority, reached_by_priority, streets = (_summed([getattr(r, name) for r in rows])
                                                     for name in ("by_priority", "reached_by_priority", "p1_streets"))
        escalations: Counter = Counter()
        for r in rows:
            escalations.update(r.escalations)
        cvs = [r.workload_cv for r in rows if not math.isnan(r.workload_cv)]
        return cls(policy=rows[0].policy, incidents=sum(r.incidents for r in rows),
                   reached=sum(r.reached for r in rows), arrival_s=[a for r in rows for a in r.arrival_s],
                   wait_s=[w for r in rows for w in r.wait_s], late_sla=sum(r.late_sla for r in rows),
                   late_report=sum(r.late_report for r in rows), judged=sum(r.judged for r in rows),
                   p1=sum(r.p1 for r in rows), p1_within_15min=sum(r.p1_within_15min for r in rows),
                   workload_cv=sum(cvs) / len(cvs) if cvs else float("nan"), escalations=escalations,
                   reassigned=sum(r.reassigned for r in rows), by_priority=by_priority,
                   reached_by_priority=reached_by_priority,
                   p1_arrival_s=[a for r in rows for a in r.p1_arrival_s], p1_streets=streets,
                   days=sum(r.days for r in rows))


def _summed(tallies: list[dict]) -> dict:
    """key -> [a, b] tallies added up key by key."""
    out: dict = {}
    for tally in tallies:
        for key, (a, b) in tally.items():
            pair = out.setdefault(key, [0, 0])
            pair[0] += a
            pair[1] += b
    return out


@dataclass
class QualityDay:
    """The days of one intensity: each policy's figures summed over the seeds, and per seed."""

    intensity: float
    hours: float
    seeds: tuple[int, ...]
    reports: int  # distinct matters reported (first reports), before dedup, over every seed
    messages: int  # every message of the days' plans
    units: int
    rows: list[QualityRow]  # per policy, summed over the seeds
    per_seed: dict[str, list[QualityRow]] = field(default_factory=dict)
    # street -> share of the day its whole area was within 15 minutes of a free eligible unit (ours)
    circle: dict[str, float] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return self.seeds[0]

    def row(self, policy: str) -> QualityRow:
        return next(r for r in self.rows if r.policy == policy)

    def has(self, policy: str) -> bool:
        return any(r.policy == policy for r in self.rows)


def quality_targets(days: list[QualityDay]) -> list[tuple[str, str, bool | None]]:
    """(target, what was measured, met) for the quality phase."""
    out: list[tuple[str, str, bool | None]] = []
    for day in days:
        ours, closest = day.row("ours"), day.row("closest-idle")
        n = len(day.seeds)
        out.append((f"ours better than closest-idle on late arrivals from the report ({day.intensity:g}× day)",
                    f"late from report {100 * ours.late_report_share:.1f} % vs "
                    f"{100 * closest.late_report_share:.1f} % (from dispatch: {100 * ours.late_share:.1f} % vs "
                    f"{100 * closest.late_share:.1f} %), {n} seeds", ours.late_report < closest.late_report))
        if day.intensity == 1:
            out.append((f"priority-1 within 15 min ≥ {100 * TARGET_P1_15_1X:.0f} % (1× day)",
                        f"{100 * ours.p1_share:.1f} % ({ours.p1_within_15min}/{ours.p1}), {n} seeds",
                        ours.p1_share >= TARGET_P1_15_1X))
            out.append((f"priority-1 p90 arrival ≤ {TARGET_P1_P90_1X_S / 60:.0f} min (1× day)",
                        f"{_minutes(ours.p1_p90_s)} min", ours.p1_p90_s <= TARGET_P1_P90_1X_S))
            out.append((f"late from report ≤ {100 * TARGET_LATE_REPORT_1X:.0f} % (1× day)",
                        f"{100 * ours.late_report_share:.1f} %", ours.late_report_share <= TARGET_LATE_REPORT_1X))
            if day.has("before"):
                before = day.row("before")
                for p in (3, 4):
                    now, then = ours.within_share(p), before.within_share(p)
                    out.append((f"priority {p} within limit no more than {100 * TARGET_P34_DROP:.0f} point below "
                                "the policy before (1× day)",
                                f"{100 * now:.1f} % vs {100 * then:.1f} %", now >= then - TARGET_P34_DROP))
        elif day.intensity == 2:
            out.append((f"priority-1 within 15 min ≥ {100 * TARGET_P1_15_2X:.0f} % (2× day)",
                        f"{100 * ours.p1_share:.1f} % ({ours.p1_within_15min}/{ours.p1}), {n} seeds",
                        ours.p1_share >= TARGET_P1_15_2X))
    return out


def _minutes(seconds: float) -> str:
    if math.isnan(seconds):
        return "–"
    if math.isinf(seconds):
        return "never (over 10 % not reached)"
    return f"{seconds / 60:.1f}"
