"""The simulated day of benchmark 4: a crew that answers dispatch orders like the field would, played offline and
deterministically (discrete-event simulation, no Kafka) through the district core under one policy.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from processors.catalogue import Catalogue, Category
from processors.coverage import circle_categories, covered
from processors.district import DispatchPolicy, DistrictCore
from processors.geography import Geography
from processors.register import UnitRegister
from processors.intake import Inbound, Limits, Rejected, admit_report, admit_unit_event
from processors.messages import DispatchOrder, Escalation, IncidentEvent, LogOff, LogOn, WorkItem, unit_event_adapter
from streams.bench.reference import DISTRICT
from streams.simulation.crew import Crew as SimCrew
from streams.simulation.simulator import DayPlan


# The simulated brigade logs on as its roster says: a register that takes every log-on at its word.
SIM_REGISTER = UnitRegister(unlisted="admit")


@dataclass
class _Case:
    """What became of one incident in a simulated day."""

    incident_id: str
    category: Category
    street: str
    lat: float
    lon: float
    created_s: float
    dispatched_s: float | None = None
    arrived_s: float | None = None
    arrive_on_time: bool | None = None


@dataclass
class DayRun:
    policy: str
    cases: dict[str, _Case]
    handled: Counter  # unit_id -> incidents resolved
    escalations: Counter
    reassigned: int
    end_s: float
    # street -> [samples its whole area was within 15 minutes of a free unit for a fight, samples]
    circle: dict[str, list[int]] = field(default_factory=dict)


def _sim_seconds(start: datetime, at: datetime) -> float:
    return (at - start).total_seconds()


def simulate_day(catalogue: Catalogue, geography: Geography, plan: DayPlan, policy: DispatchPolicy, name: str, *,
                 seed: int, tick_s: float = 5.0, drain_s: float = 7200.0,
                 advance=None, circle_points: dict | None = None, circle_every_s: float = 300.0) -> DayRun:
    """Play `plan` through a district core in simulated time: the day's messages, the crew's answers, clock ticks."""
    core = DistrictCore(DISTRICT, catalogue, policy)
    crew = SimCrew(catalogue, seed)
    limits = Limits()
    start = plan.start
    end_s = plan.hours * 3600 + drain_s
    heap: list[tuple[float, int, str, object]] = []
    seq = 0
    for m in plan.messages:
        seq += 1
        heap.append((m.at_s, seq, "plan", m))
    heapq.heapify(heap)
    unit_district: dict[str, str | None] = {}
    cases: dict[str, _Case] = {}
    handled: Counter = Counter()
    escalations: Counter = Counter()
    reassigned = 0
    next_tick = tick_s
    next_circle = circle_every_s
    circle: dict[str, list[int]] = {}
    offset = 0
    last_progress = 0.0

    def take(outputs: list, now: float) -> None:
        nonlocal seq, reassigned
        for out in outputs:
            if isinstance(out, DispatchOrder):
                for at, unit_id, fields in crew.on_order(out, now):
                    seq += 1
                    heapq.heappush(heap, (at, seq, "crew", (unit_id, fields)))
            elif isinstance(out, IncidentEvent):
                reassigned += _observe(out, _sim_seconds(start, out.at), catalogue, cases, handled)
            elif isinstance(out, Escalation):
                escalations[(out.level, out.reason)] += 1

    while True:
        t_next = heap[0][0] if heap else math.inf
        if next_tick <= t_next:
            if next_tick > end_s:
                break
            now = next_tick
            next_tick += tick_s
            take(core.apply(WorkItem(kind="tick", district=DISTRICT, at=start + timedelta(seconds=now))), now)
            if circle_points and now >= next_circle and now <= plan.hours * 3600:
                next_circle += circle_every_s
                _sample_circle(core, circle_points, circle)
        else:
            now, _, kind, payload = heapq.heappop(heap)
            if now > end_s:
                break
            at = start + timedelta(seconds=now)
            offset += 1
            if kind == "plan":
                item = _admit(payload, at, offset, catalogue, geography, limits, unit_district, crew)
            else:
                unit_id, fields = payload
                if not crew.still_wanted(unit_id, fields):
                    continue
                crew.happened(unit_id, fields)
                event = unit_event_adapter.validate_python({
                    "schema_version": 1, "event_id": f"sim-{offset}", "unit_id": unit_id, "at": at, **crew.wire(fields)})
                item = WorkItem(kind="unit_event", district=DISTRICT, at=at, unit_event=event)
            if item is not None:
                take(core.apply(item), now)
        if advance is not None and now - last_progress >= 600:
            advance(to=min(now, end_s))
            last_progress = now
    return DayRun(name, cases, handled, escalations, reassigned, end_s, circle)


def _observe(event: IncidentEvent, t: float, catalogue: Catalogue, cases: dict[str, _Case], handled: Counter) -> int:
    """What an incident event tells the day's judge: a case opened, dispatched, reached or handled; 1 if it is a
    reassignment (counted by the caller), else 0."""
    data = event.data
    if event.type == "created":
        cases[event.incident_id] = _Case(event.incident_id, catalogue.get(data["category"]), data["street"],
                                         data["lat"], data["lon"], t)
        return 0
    case = cases.get(event.incident_id)
    if case is None:
        return 0
    if event.type == "dispatched" and case.dispatched_s is None:
        case.dispatched_s = t
    elif event.type == "on_scene" and case.arrived_s is None:
        case.arrived_s = t
        case.arrive_on_time = data.get("arrive_on_time")
    elif event.type == "resolved":
        handled[data["unit_id"]] += 1
    return 1 if event.type == "reassigned" else 0


def _sample_circle(core: DistrictCore, points: dict, circle: dict[str, list[int]]) -> None:
    """One sample of the 15-minute circle for the police (a fight, in the sample catalogue), judged as the live
    gauge judges it: per street, [samples covered, samples]."""
    category = circle_categories(core.catalogue).get("police")
    if category is None:
        return
    for street, ok in covered(core.state, points, category, "police").items():
        tally = circle.setdefault(street, [0, 0])
        tally[0] += ok
        tally[1] += 1


def _admit(m, at: datetime, offset: int, catalogue, geography, limits, unit_district, crew: SimCrew) -> WorkItem | None:
    """A planned message through the real intake, as the worker would admit it."""
    record = Inbound(m.topic, 0, offset, m.key.encode() if m.key else None, m.value, at)
    if m.topic == "incident.reports":
        result = admit_report(record, catalogue, geography, limits)
        return None if isinstance(result, Rejected) else result.item
    key = m.key or ""
    result = admit_unit_event(record, geography, limits, unit_district.get(key), SIM_REGISTER)
    if isinstance(result, Rejected):
        return None
    event = result.unit_event
    if isinstance(event, LogOn):
        unit_district[key] = event.district
        crew.log_on(event.unit_id, event.mode, event.lat, event.lon)
    elif isinstance(event, LogOff):
        unit_district[key] = None
        if event.unit_id in crew.units:
            crew.units[event.unit_id].on_duty = False
    return result
