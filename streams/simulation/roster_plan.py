"""Staffing from demand: `patrol roster plan` proposes when each unit of the roster starts its 12-hour shift, so that
every agency's officers on duty follow the hours its work comes in.

Demand is read from history: here simulated days (`plan_day` with seeds of their own, never the benchmark's, so
that what is learned is tested on other days). Each matter reported asks of every agency it needs the time on scene
its category takes (`streams.simulation.crew.HANDLING_S`) plus the time to get there; summed per agency and hour of
the day, that is the officer-hours of work each hour brings. An agency's head count is fixed (the roster's units):
the planner spreads its shifts so that the officers on duty each hour are in proportion to that hour's work, filling
the largest shortfall first, one unit at a time; cars first, then bikes, then foot, so each hour gets its share of
each mode.
"""

from __future__ import annotations

import math
from collections import defaultdict

from processors.catalogue import Catalogue
from processors.geography import Geography
from streams.simulation.crew import CrewHabits
from streams.simulation.simulator import SHIFT_HOURS, plan_day

# Between an order and the unit on scene: acknowledgement and a typical drive across part of the district.
REACH_S = 600.0
# Every hour keeps at least this share of a group's average cover, however quiet: a fight at 06:00 still needs a
# car within 15 minutes, which takes officers spread over the district, not officers in proportion to the work.
# Chosen on simulated days of their own (seeds 1015-1042, neither the history's nor the benchmark's): priority 1
# within 15 minutes was flat from 0.3 to 0.5 and a point lower at 0.6 and above (four points on the 2x day);
# with no floor the quiet hours went thin and the priority-1 p90 rose by six minutes.
FLOOR_SHARE = 0.4
HISTORY_SEEDS = tuple(range(1001, 1015))  # two weeks of simulated history, disjoint from the benchmark's days
MODE_ORDER = {"car": 0, "bike": 1, "foot": 2}


def demand(catalogue: Catalogue, geography: Geography, roster: list[dict],
           seeds: tuple[int, ...] = HISTORY_SEEDS) -> dict[str, list[float]]:
    """agency -> officer-hours of work brought by each hour of the day (0-23), averaged over the history's days."""
    import json

    habits = CrewHabits()
    work: dict[str, list[float]] = defaultdict(lambda: [0.0] * 24)
    for seed in seeds:
        plan = plan_day(catalogue, geography, roster, seed=seed, hours=24.0)
        for m in plan.messages:
            if m.what != "report":
                continue
            category = catalogue.get(json.loads(m.value)["category"])
            if category is None:
                continue
            hour = int(m.at_s // 3600) % 24
            for _agency in category.agencies:
                work[_agency][hour] += (typical_handle_s(habits, category) + REACH_S) / 3600 / len(seeds)
    return dict(work)


def typical_handle_s(habits: CrewHabits, category) -> float:
    """The mean time on scene of the category's distribution (a log-normal's mean: median × e^(σ²/2))."""
    from streams.simulation.crew import HANDLING_S

    if category.code in HANDLING_S:
        median, sigma = HANDLING_S[category.code]
    else:
        median, sigma = max(60.0, category.sla.resolve_s * habits.handle_share_of_limit), 0.5
    return min(habits.handle_cap_s, median * math.exp(sigma * sigma / 2))


def plan_shifts(roster: list[dict], work: dict[str, list[float]]) -> dict[str, int]:
    """unit_id -> the hour its 12-hour shift starts: per agency and kind, units on duty each hour a floor plus a
    share in proportion to the hour's work."""
    starts: dict[str, int] = {}
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for unit in roster:
        # officers and auxiliaries apart: only officers may take most urgent matters, so each hour needs its share
        groups[(unit["agency"], unit["kind"])].append(unit)
    for (agency, _kind), units in sorted(groups.items()):
        hourly = work.get(agency) or [1.0] * 24
        total = sum(hourly) or 1.0
        # what each hour should have on duty, out of the unit-hours the group gives a day: a floor for every
        # hour, the rest in proportion to the hour's work
        day = len(units) * SHIFT_HOURS
        floor = FLOOR_SHARE * day / 24
        target = [floor + (day - 24 * floor) * w / total for w in hourly]
        on_duty = [0.0] * 24
        for unit in sorted(units, key=lambda u: (MODE_ORDER.get(u["mode"], 3), u["kind"] != "officer", u["unit_id"])):
            best = max(range(24), key=lambda h: (sum(target[(h + k) % 24] - on_duty[(h + k) % 24]
                                                     for k in range(SHIFT_HOURS)), -h))
            starts[unit["unit_id"]] = best
            for k in range(SHIFT_HOURS):
                on_duty[(best + k) % 24] += 1
    return starts


def coverage(roster: list[dict], starts: dict[str, int]) -> dict[str, list[int]]:
    """agency -> units on duty each hour of the day under `starts`."""
    out: dict[str, list[int]] = defaultdict(lambda: [0] * 24)
    for unit in roster:
        start = starts[unit["unit_id"]]
        for k in range(SHIFT_HOURS):
            out[unit["agency"]][(start + k) % 24] += 1
    return dict(out)


def replanned(roster: list[dict], starts: dict[str, int]) -> list[dict]:
    """The roster's log-on lines with each unit's planned shift start (`shift_start_h`)."""
    return [{**unit, "shift_start_h": starts[unit["unit_id"]]} for unit in roster]
