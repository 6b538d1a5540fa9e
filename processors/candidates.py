"""Choosing units: which free units may fill an incident's agency place, fastest first, which of them is sent,
which busy unit a priority-1 incident may take, and which queued incident a freed unit goes to.

Reads the district's state and changes nothing; the dispatch policy says which of our choices are on.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from datetime import datetime, timedelta

from processors.catalogue import Catalogue, Category
from processors.district_state import DistrictState
from processors.geography import distance_m
from processors.incidents import Incident
from processors.units import FEWEST_SECONDS_PER_M, Unit, places_for

# Candidates within this much of the best ETA count as a near-tie and are chosen
# between by the workload of their home streets instead.
NEAR_TIE_S = 60.0
NEAR_TIE_SHARE = 0.15
CANDIDATES_PER_PLACE = 8
CANDIDATES_EXPLAINED = 5
# Between an order and the unit setting off: the officer reads it and answers (about half a minute).
# A unit "reaches in time" only if its travel plus this still fits the limit.
REACH_MARGIN_S = 30.0


@dataclass(frozen=True)
class DispatchPolicy:
    """The choices that make our dispatching more than "send the closest idle unit" (which is all of them off)."""

    balance_streets: bool = True  # near-ties go to the unit whose home street can spare it
    # ...but only between units that all arrive within the limit: a spared street is not worth a late arrival
    balance_in_time_only: bool = True
    preempt: bool = True  # priority 1 may pull a unit off a lower-priority task short of the scene
    # A freed unit takes, among the most urgent queued incidents, one it can still reach within the limit
    # (earliest promise to the citizen first) rather than the oldest. In a busy day a unit comes free far
    # from the oldest incident as often as not; sending it across the district makes that one late anyway
    # and keeps the unit off the road longer, while the incident next to it goes late waiting.
    queue_by_reach: bool = True
    # Priority 1 may pull a unit off on-scene work of this priority or lower (None: never off a scene). A
    # parking ticket or a street stall can wait for a second visit, and so can a drunk or a jam already
    # attended: a fight cannot wait for a car across town. Priority 1 never takes a unit from priority 1.
    preempt_on_scene_from: int | None = 2
    # Priority 1 takes a busy unit whenever it is this much faster than the best free one, not only when no unit
    # is free (None: only then): three minutes is what decides whether a fight is reached within fifteen.
    preempt_margin_s: float | None = 180.0
    # ...and then off a task of this priority or lower. Priority 2 too: measured over 20 days, sparing priority-2
    # tasks a unit three minutes nearer cost priority 1 more (within 15 minutes) than it saved priority 2.
    preempt_margin_from: int = 2
    # A unit that comes free takes over a priority-1 place from a unit still on its way, if it gets there this
    # much sooner (None: never): dispatched at once to the only free car across town, a fight should not keep it
    # when a car round the corner finishes its parking ticket a minute later.
    take_over_margin_s: float | None = 180.0
    # A task a unit was pulled off waits at the head of its priority: it has waited once already.
    bumped_first: bool = True
    # Street balancing for priority 1 (off: a fight gets the fastest unit, whatever its street can spare).
    balance_priority_1: bool = False
    # A priority-5 incident waiting this long queues with priority 4's broken promises (those that can no longer
    # be reached within the limit counted from the report), oldest first, so it is not starved, at no cost to an
    # incident of priority 1-4 whose promise can still be kept.
    age_after_s: float | None = 4 * 3600.0


CLOSEST_IDLE = DispatchPolicy(balance_streets=False, balance_in_time_only=False, preempt=False, queue_by_reach=False,
                              preempt_on_scene_from=None, preempt_margin_s=None, bumped_first=False,
                              balance_priority_1=True, age_after_s=None, take_over_margin_s=None)
# Ours as it was before the rules above (on-scene pre-emption and onwards) were added: the benchmark's "before".
BEFORE = DispatchPolicy(preempt_on_scene_from=None, preempt_margin_s=None, bumped_first=False, balance_priority_1=True,
                        age_after_s=None, take_over_margin_s=None)
# Only priority 5 ages (into priority 4's broken promises): an aged priority 4 would queue ahead of every
# priority 4 whose promise can still be kept, and cost them more than it gains (measured in the benchmark).
AGEING_FROM = 5

Ranking = list[tuple[float, float, str]]


def candidates(state: DistrictState, category: Category, agency: str, lat: float, lon: float,
               passed_over: Container[str] = ()) -> Ranking:
    """The free units that may fill the `agency` place of a `category` incident at (lat, lon), fastest
    first, as (eta_s, distance_m, unit_id); at most CANDIDATES_PER_PLACE, none of `passed_over`."""
    # filed under one of the place's keys is what may_act_for says, so only the passed-over need a look
    return state.free.nearest(places_for(category, agency), lat, lon, CANDIDATES_PER_PLACE,
                              FEWEST_SECONDS_PER_M,
                              (lambda unit_id: unit_id not in passed_over) if passed_over else None)


def rank(state: DistrictState, incident: Incident, agency: str, taken: set[str]) -> Ranking:
    """The candidates for one place of `incident`, leaving out the units already taken or excluded."""
    return candidates(state, incident.category, agency, incident.lat, incident.lon, taken | incident.excluded)


def arrive_limit(catalogue: Catalogue, incident: Incident, at: datetime) -> datetime:
    """When a unit sent at `at` must be on scene: the limit set by the first dispatch, or the one this one starts."""
    if incident.arrive_by is not None:
        return incident.arrive_by
    return catalogue.deadline(incident.category, at, incident.category.sla.arrive_s)


def arrival(at: datetime, eta_s: float) -> datetime:
    return at + timedelta(seconds=eta_s + REACH_MARGIN_S)


def pick(state: DistrictState, catalogue: Catalogue, policy: DispatchPolicy, ranking: Ranking, incident: Incident,
         at: datetime) -> tuple[float, str] | None:
    """The fastest unit, except that among near-ties the one whose home street can spare it best wins."""
    if not ranking:
        return None
    if not policy.balance_streets or (incident.priority == 1 and not policy.balance_priority_1):
        return ranking[0][0], ranking[0][2]
    best = ranking[0][0]
    near = [r for r in ranking if r[0] <= best + max(NEAR_TIE_S, NEAR_TIE_SHARE * best)]
    if policy.balance_in_time_only:
        # a slower unit that makes the limit late (or later) costs the incident more than the street gains
        limit = arrive_limit(catalogue, incident, at)
        near = [r for r in near if arrival(at, r[0]) <= limit] or ranking[:1]
    load = state.load
    eta, _, unit_id = min(near, key=lambda r: (load.pressure(state.units[r[2]].home_street), r[0], r[2]))
    return eta, unit_id


def preemptable(state: DistrictState, incident: Incident, agency: str, taken: set[str],
                on_scene_from: int | None = None, busy_from: int = 2) -> tuple[float, str] | None:
    """For a priority-1 incident: the fastest unit busy on a task of priority `busy_from` or lower, short of the
    scene or (from priority `on_scene_from` down) on it."""
    units, incidents = state.units, state.incidents

    def eligible(unit_id: str) -> bool:
        unit = units[unit_id]
        if unit_id in taken or unit_id in incident.excluded or not unit.on_duty or not unit.available:
            return False
        if unit.order_id is None:
            return False
        busy_with = incidents[unit.incident_id].priority
        if unit.stage == "on_scene" and (on_scene_from is None or busy_with < on_scene_from):
            return False
        return busy_with > incident.priority and busy_with >= busy_from and unit.may_act_for(incident.category, agency)

    ranking = state.grid.nearest(incident.lat, incident.lon, 1, FEWEST_SECONDS_PER_M, eligible)
    return (ranking[0][0], ranking[0][2]) if ranking else None


def preempt_choice(free: tuple[float, str] | None, busy: tuple[float, str] | None,
                   margin_s: float | None) -> tuple[float, str] | None:
    """The busy unit a priority-1 incident takes instead of `free` (the best free one), if any: when no unit is
    free, or (with a margin) when the busy one is at least `margin_s` faster."""
    if busy is None:
        return None
    if free is None:
        return busy
    if margin_s is not None and busy[0] + margin_s <= free[0]:
        return busy
    return None


def aged(policy: DispatchPolicy, incident: Incident, at: datetime) -> bool:
    """A priority 4-5 incident that has waited long enough to queue with priority 3."""
    return (policy.age_after_s is not None and incident.priority >= AGEING_FROM
            and (at - incident.created_at).total_seconds() >= policy.age_after_s)


def queue_order(policy: DispatchPolicy, incident: Incident, at: datetime) -> tuple:
    """Oldest first within a priority (a bumped task ahead of the rest), as closest-idle serves its queue."""
    if aged(policy, incident, at):
        return (incident.priority - 1, True, incident.created_at, incident.incident_id)
    return (incident.priority, not (policy.bumped_first and incident.bumped), incident.created_at,
            incident.incident_id)


def reach_order(catalogue: Catalogue, unit: Unit, incident: Incident, at: datetime,
                policy: DispatchPolicy = DispatchPolicy()) -> tuple:
    """Priority first, always: a fight never waits behind a parking complaint. Within a priority, a task a unit
    was pulled off comes first; then the incidents this unit can reach within the arrive limit, and of those
    the ones whose promise to the citizen (the limit counted from the report) can still be kept, earliest
    promise first, so the unit saves the most promises it can; the rest, oldest first, as before. A priority
    4-5 incident that has waited long (`aged`) queues with priority 3's hopeless cases, oldest first."""
    if aged(policy, incident, at):
        # after every priority-3 incident whose promise can still be kept, among (oldest first) those whose can't
        return (incident.priority - 1, True, False, True, incident.created_at, incident.created_at,
                incident.incident_id)
    eta = unit.eta_s(distance_m(unit.lat, unit.lon, incident.lat, incident.lon))
    reached = arrival(at, eta)
    in_time = reached <= arrive_limit(catalogue, incident, at)
    kept = reached <= incident.due_by
    return (incident.priority, not (policy.bumped_first and incident.bumped), not in_time, not kept,
            incident.due_by if kept else incident.created_at, incident.created_at, incident.incident_id)
