"""Benchmark 4, dispatch quality: judging a simulated day (arrival times, lateness, workload spread), the
hindsight assignment that knows the whole day, and the policy sweep.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter, defaultdict
from datetime import datetime, timedelta

from processors.catalogue import Catalogue
from processors.district import CLOSEST_IDLE, DispatchPolicy
from processors.geography import Geography
from processors.units import Unit
from streams.bench.reference import Steps
from streams.bench.results import QualityDay, QualityRow, SweepRow
from streams.bench.sim import DayRun, SimCrew, _Case, _SimUnit, _sim_seconds, simulate_day
from streams.simulation.simulator import DayPlan, plan_day


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
