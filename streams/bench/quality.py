"""Benchmark 4, dispatch quality: judging a simulated day (arrival times, lateness from the report and from
dispatch, per priority and per street, workload spread), the capacity-relaxed ceiling, and the days of each
intensity over many seeds (in parallel: the offline day is pure).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
from collections import Counter, defaultdict
from datetime import datetime, timedelta

from processors.catalogue import Catalogue
from processors.district import BEFORE, CLOSEST_IDLE, DispatchPolicy
from processors.geography import Geography, distance_m
from processors.units import DETOUR_FACTOR, SPEED_M_S, Unit
from streams.bench.quality_results import FIFTEEN_MINUTES_S, QualityDay, QualityRow
from processors.coverage import street_points
from streams.bench.reference import DISTRICT, Steps
from streams.bench.sim import DayRun, _Case, _sim_seconds, simulate_day
from streams.simulation.crew import CrewHabits
from streams.simulation.simulator import DayPlan, plan_day

# The policies each day is played under; "before" is ours with the rules added since the honest measurement off.
POLICIES: dict[str, DispatchPolicy] = {"ours": DispatchPolicy(), "before": BEFORE, "closest-idle": CLOSEST_IDLE}
CEILING = "ceiling"


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
    """The figures of a played day: time to arrival, late arrivals (from the report, as the citizen counts, and
    the core's rule from the first dispatch), per priority and per street, and the spread of work."""
    arrival, waits, late_sla, late_report, judged, p1, p1_fast, reached = [], [], 0, 0, 0, 0, 0, 0
    by_priority: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    reached_by_priority: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    p1_arrival: list[float] = []
    p1_streets: dict[str, list[int]] = defaultdict(lambda: [0, 0])
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
        took = case.arrived_s - case.created_s if case.arrived_s is not None else math.inf
        reached_by_priority[category.priority][0] += 1
        reached_by_priority[category.priority][1] += case.arrived_s is not None
        if category.priority == 1:
            p1 += 1
            fast = took <= FIFTEEN_MINUTES_S
            p1_fast += fast
            p1_streets[case.street][0] += 1
            p1_streets[case.street][1] += fast
            if case.arrived_s is not None or case.created_s + FIFTEEN_MINUTES_S <= run.end_s:
                p1_arrival.append(took)
        if case.arrived_s is not None:
            reached += 1
            arrival.append(took)
            judged += 1
            late_sla += case.arrived_s > by_sla
            late_report += case.arrived_s > from_report
            by_priority[category.priority][0] += 1
            by_priority[category.priority][1] += case.arrived_s <= from_report
        elif min(by_sla, from_report) <= run.end_s:
            # never reached while its limit ran out within the observed time: late
            judged += 1
            late_sla += by_sla <= run.end_s
            late_report += from_report <= run.end_s
            if from_report <= run.end_s:
                by_priority[category.priority][0] += 1
    return QualityRow(policy=run.policy, incidents=len(run.cases), reached=reached, arrival_s=arrival, wait_s=waits,
                      late_sla=late_sla, late_report=late_report, judged=judged, p1=p1, p1_within_15min=p1_fast,
                      workload_cv=_workload_cv(run.handled, roster), escalations=run.escalations,
                      reassigned=run.reassigned, by_priority=dict(by_priority),
                      reached_by_priority=dict(reached_by_priority), p1_arrival_s=p1_arrival,
                      p1_streets=dict(p1_streets))


# -------------------------------------------------------------------- the capacity-relaxed ceiling


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


def capacity_relaxed(roster: list[dict], plan: DayPlan, run: DayRun, habits: CrewHabits = CrewHabits()) -> DayRun:
    """The ceiling with capacity relaxed: every incident of `run` (the incidents the core made under our
    policy) is met as if every officer on duty and eligible for one of its places were free at their post the
    moment it is reported, acknowledged in the crew's median time and drove straight there. Nothing is ever
    busy, so no dispatching policy with this roster can do better; what it does not reach in time is geography
    and the roster's shifts, the rest of the gap is policy and staffing."""
    spans = _shifts(plan, run.end_s)
    units = [Unit(unit_id=p["unit_id"], agency=p["agency"], kind=p["kind"], home_street=p["home_street"],
                  mode=p["mode"], delegations=frozenset(p.get("delegations") or ()), lat=p["lat"], lon=p["lon"])
             for p in roster if p["unit_id"] in spans]
    cases: dict[str, _Case] = {}
    for cid, c in run.cases.items():
        case = _Case(c.incident_id, c.category, c.street, c.lat, c.lon, c.created_s)
        best = math.inf
        for unit in units:
            if not any(a <= c.created_s < b for a, b in spans[unit.unit_id]):
                continue
            if not any(unit.may_act_for(c.category, agency) for agency in c.category.agencies):
                continue
            travel = distance_m(unit.lat, unit.lon, c.lat, c.lon) * DETOUR_FACTOR / SPEED_M_S[unit.mode]
            best = min(best, travel)
        if best < math.inf:
            case.dispatched_s = c.created_s
            case.arrived_s = c.created_s + habits.ack_median_s + 5 + best
        cases[cid] = case
    return DayRun(CEILING, cases, Counter(), Counter(), 0, run.end_s)


# -------------------------------------------------------------------- the days of an intensity

_world: tuple | None = None


def _load_world(world: tuple) -> None:
    global _world
    _world = world


def play_seed(args: tuple) -> tuple[int, int, int, dict[str, QualityRow], dict]:
    """One seed's day under every policy, judged, with the ceiling: (seed, reports, messages, rows by policy,
    ours' 15-minute circle per street)."""
    seed, hours, intensity, policies = args
    catalogue, geography, roster = _world
    plan = plan_day(catalogue, geography, roster, seed=seed, hours=hours, intensity=intensity)
    rows, runs = {}, {}
    for name, policy in policies.items():
        runs[name] = simulate_day(catalogue, geography, plan, policy, name, seed=seed,
                                  circle_points=_circle_points(geography) if name == "ours" else None)
        rows[name] = judge(runs[name], catalogue, roster, plan.start)
    rows[CEILING] = judge(capacity_relaxed(roster, plan, runs["ours"]), catalogue, roster, plan.start)
    return seed, plan.count("report"), len(plan.messages), rows, runs["ours"].circle


_points: dict | None = None


def _circle_points(geography: Geography) -> dict:
    global _points
    if _points is None:
        _points = street_points(geography, DISTRICT)
    return _points


def dispatch_quality(catalogue: Catalogue, geography: Geography, roster: list[dict], *, hours: float,
                     intensity: float, seeds: tuple[int, ...] = (1,), steps: Steps | None = None,
                     policies: dict[str, DispatchPolicy] | None = None, processes: int | None = None) -> QualityDay:
    """Every seed's day of this intensity under each policy (ours first), summed and per seed."""
    policies = policies or POLICIES
    jobs = [(seed, hours, intensity, policies) for seed in seeds]
    world = (catalogue, geography, roster)
    processes = processes or min(len(seeds), os.cpu_count() or 1, 2)
    results = []
    with (steps.task(f"quality, {intensity:g}× days", len(seeds)) if steps else contextlib.nullcontext()) as adv:
        if processes > 1:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(processes, initializer=_load_world, initargs=(world,)) as pool:
                for result in pool.imap_unordered(play_seed, jobs):
                    results.append(result)
                    if adv:
                        adv()
        else:
            _load_world(world)
            for job in jobs:
                results.append(play_seed(job))
                if adv:
                    adv()
    results.sort(key=lambda r: r[0])
    names = [*policies, CEILING]
    per_seed = {name: [r[3][name] for r in results] for name in names}
    circle: dict[str, list[int]] = {}
    for r in results:
        for street, (ok, n) in r[4].items():
            circle.setdefault(street, [0, 0])
            circle[street][0] += ok
            circle[street][1] += n
    return QualityDay(intensity=intensity, hours=hours, seeds=tuple(r[0] for r in results),
                      reports=sum(r[1] for r in results), messages=sum(r[2] for r in results), units=len(roster),
                      rows=[QualityRow.merge(per_seed[name]) for name in names], per_seed=per_seed,
                      circle={s: ok / n for s, (ok, n) in circle.items() if n})
