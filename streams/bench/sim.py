"""The simulated day of benchmark 4: a crew that answers dispatch orders like the field would, played offline and
deterministically (discrete-event simulation, no Kafka) through the district core under one policy.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from processors.catalogue import Catalogue, Category
from processors.district import DispatchPolicy, DistrictCore
from processors.geography import Geography, distance_m
from processors.intake import Inbound, Limits, Rejected, admit_report, admit_unit_event
from processors.messages import DispatchOrder, Escalation, IncidentEvent, LogOff, LogOn, WorkItem, unit_event_adapter
from processors.units import DETOUR_FACTOR, SPEED_M_S
from streams.bench.reference import DISTRICT
from streams.simulation.simulator import CrewHabits, DayPlan


@dataclass
class _SimUnit:
    unit_id: str
    mode: str
    lat: float
    lon: float
    on_duty: bool = False


class SimCrew:
    """The field units in simulated time, behaving as `streams.simulation.simulator.FieldCrew`'s officers do.

    Every random draw is keyed by what it is about (the order id, the incident), not
    by the order of play, so both policies meet the same officers: the n-th order of
    an incident is acknowledged after the same delay, or declined, under either policy,
    and an incident takes as long to handle whoever handles it. Travel is the crow-fly
    distance × the core's detour factor over the unit's mode speed, from where the unit
    really is (it reports its position when it reaches a scene).
    """

    def __init__(self, catalogue: Catalogue, seed: int, habits: CrewHabits = CrewHabits()):
        self.catalogue = catalogue
        self.seed = seed
        self.habits = habits
        self.units: dict[str, _SimUnit] = {}
        self.cancelled: set[str] = set()
        self.ack_pending: dict[str, float] = {}  # order id -> when its acknowledgement is due to be sent

    def draws(self, order_id: str) -> random.Random:
        return random.Random(f"{self.seed}:{order_id}")

    def handle_s(self, incident_id: str, category: Category | None) -> float:
        return self.habits.handle_s(random.Random(f"{self.seed}:handle:{incident_id}"), category)

    def ack_s(self, order_id: str) -> float:
        return self.habits.ack_s(self.draws(order_id))

    def travel_s(self, unit: _SimUnit, lat: float, lon: float) -> float:
        return distance_m(unit.lat, unit.lon, lat, lon) * DETOUR_FACTOR / SPEED_M_S[unit.mode]

    def on_order(self, order: DispatchOrder, now: float) -> list[tuple[float, str, dict]]:
        """Unit events (at, unit_id, fields) in answer to an order read at simulated second `now`."""
        if order.kind == "cancel":
            self.cancelled.add(order.order_id)
            ack_at = self.ack_pending.pop(order.order_id, None)
            if ack_at is not None and ack_at > now:
                # taken off the task before answering (too slow to acknowledge, or pre-empted): the officer
                # sees the cancellation when picking up the radio and reports ready for the next one
                return [(ack_at, order.unit_id, {"type": "available"})]
            return []
        unit = self.units.get(order.unit_id)
        if unit is None:
            return []
        h = self.habits
        rnd = self.draws(order.order_id)
        ack = h.ack_s(rnd)  # the same draw as ack_s()
        never, decline, drop = rnd.random(), rnd.random(), rnd.random()
        oid = order.order_id
        if never < h.never_ack:
            # the radio is off; the officer reports back once the order has surely been taken away
            ack_by = (order.ack_by - order.issued_at).total_seconds() if order.ack_by else 0.0
            return [(now + max(h.silent_for_s, ack_by + 60.0), unit.unit_id, {"type": "available"})]
        if decline < h.decline:
            return [(now + ack, unit.unit_id, {"type": "decline", "order_id": oid})]
        self.ack_pending[oid] = now + ack
        travel = self.travel_s(unit, order.lat, order.lon)
        out = [(now + ack, unit.unit_id, {"type": "ack", "order_id": oid}),
               (now + ack + 5, unit.unit_id, {"type": "en_route", "order_id": oid})]
        if drop < h.drop_out:
            out.append((now + ack + 5 + travel / 2, unit.unit_id, {"type": "log_off"}))
            return out
        arrive = now + ack + 5 + travel
        out.append((arrive, unit.unit_id, {"type": "location", "lat": order.lat, "lon": order.lon}))
        out.append((arrive, unit.unit_id, {"type": "on_scene", "order_id": oid}))
        category = self.catalogue.get(order.category)
        out.append((arrive + self.handle_s(order.incident_id, category), unit.unit_id,
                    {"type": "resolved", "order_id": oid, "outcome": "handled"}))
        return out

    def still_wanted(self, unit_id: str, event: dict) -> bool:
        order_id = event.get("order_id")
        return not (order_id is not None and order_id in self.cancelled)

    def happened(self, unit_id: str, event: dict) -> None:
        if event["type"] == "ack":
            self.ack_pending.pop(event["order_id"], None)
        unit = self.units.get(unit_id)
        if unit is not None and event["type"] == "location":
            unit.lat, unit.lon = event["lat"], event["lon"]


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


def _sim_seconds(start: datetime, at: datetime) -> float:
    return (at - start).total_seconds()


def simulate_day(catalogue: Catalogue, geography: Geography, plan: DayPlan, policy: DispatchPolicy, name: str, *,
                 seed: int, tick_s: float = 5.0, drain_s: float = 7200.0,
                 advance=None) -> DayRun:
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
                data = out.data
                t = _sim_seconds(start, out.at)
                if out.type == "created":
                    category = catalogue.get(data["category"])
                    cases[out.incident_id] = _Case(out.incident_id, category, data["street"], data["lat"],
                                                   data["lon"], t)
                    continue
                case = cases.get(out.incident_id)
                if case is None:
                    continue
                if out.type == "dispatched" and case.dispatched_s is None:
                    case.dispatched_s = t
                elif out.type == "on_scene" and case.arrived_s is None:
                    case.arrived_s = t
                    case.arrive_on_time = data.get("arrive_on_time")
                elif out.type == "resolved":
                    handled[data["unit_id"]] += 1
                elif out.type == "reassigned":
                    reassigned += 1
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
                    "schema_version": 1, "event_id": f"sim-{offset}", "unit_id": unit_id, "at": at, **fields})
                item = WorkItem(kind="unit_event", district=DISTRICT, at=at, unit_event=event)
            if item is not None:
                take(core.apply(item), now)
        if advance is not None and now - last_progress >= 600:
            advance(to=min(now, end_s))
            last_progress = now
    return DayRun(name, cases, handled, escalations, reassigned, end_s)


def _admit(m, at: datetime, offset: int, catalogue, geography, limits, unit_district, crew: SimCrew) -> WorkItem | None:
    """A planned message through the real intake, as the worker would admit it."""
    record = Inbound(m.topic, 0, offset, m.key.encode() if m.key else None, m.value, at)
    if m.topic == "incident.reports":
        result = admit_report(record, catalogue, geography, limits)
        return None if isinstance(result, Rejected) else result.item
    key = m.key or ""
    result = admit_unit_event(record, geography, limits, unit_district.get(key))
    if isinstance(result, Rejected):
        return None
    event = result.unit_event
    if isinstance(event, LogOn):
        unit_district[key] = event.district
        crew.units[event.unit_id] = _SimUnit(event.unit_id, event.mode, event.lat, event.lon, True)
    elif isinstance(event, LogOff):
        unit_district[key] = None
        if event.unit_id in crew.units:
            crew.units[event.unit_id].on_duty = False
    return result
