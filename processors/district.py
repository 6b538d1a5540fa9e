"""The district core: one district's incidents and units, and the decisions it makes for each entry of its work log.

Deterministic by construction: the only clock is the work item's `at`, ids are
derived from the log's content, ties are broken by id, so replaying a
district's log reproduces every decision and every emitted message byte for byte.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Container
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from processors.catalogue import Catalogue, Category
from processors.deadlines import DeadlineBook
from processors.geography import distance_m
from processors.dead_letters import Rejected, dead_letter
from processors.messages import (
    Availability,
    DispatchOrder,
    Escalation,
    IncidentEvent,
    IncidentReport,
    Location,
    LogOff,
    LogOn,
    Message,
    OrderStatus,
    Resolved,
    WorkItem,
)
from processors.spatial import FiledGrid, Grid
from processors.units import FEWEST_SECONDS_PER_M, STAGE_OF_EVENT, STAGES, Assignment, StreetLoad, Unit, places_for

# Candidates within this much of the best ETA count as a near-tie and are chosen
# between by the workload of their home streets instead.
NEAR_TIE_S = 60.0
NEAR_TIE_SHARE = 0.15
CANDIDATES_PER_PLACE = 8
CANDIDATES_EXPLAINED = 5
# Between an order and the unit setting off: the officer reads it and answers (about half a minute).
# A unit "reaches in time" only if its travel plus this still fits the limit.
REACH_MARGIN_S = 30.0
# How long a closed incident is kept in memory: for the day's late field events to be told apart from
# mistakes. After that the core forgets it (and its orders), so that its memory holds a day, not its whole
# history; its report ids are kept longer (RESENDS_KEPT), so that a report resent later never opens it again.
CLOSED_KEPT = timedelta(hours=24)
# How long a report id is remembered after it arrived (and at least as long as its incident is in memory): a
# producer resending a report does so within minutes or hours, not a week; a week-old report id is forgotten so
# that the core's memory is bounded by what a week brings, not by its whole history.
RESENDS_KEPT = timedelta(days=7)


def _seconds(span) -> float:
    return round(span.total_seconds(), 3)


def _order_id(incident: "Incident", n: int) -> str:
    """The id of an incident's n-th order (from 1)."""
    return f"{incident.incident_id}-O{n}"


def incident_id_for(district: str, report_id: str) -> str:
    """Derived from the first report, not from a counter: report ids are unique for good, while a
    counter restarts with a new log and would reuse ids already in the audit trail."""
    digest = hashlib.sha256(report_id.encode()).hexdigest()[:12].upper()
    return f"INC-{district}-{digest}"


@dataclass
class Incident:
    incident_id: str
    report_id: str
    category: Category
    priority: int
    street: str
    lat: float
    lon: float
    address: str | None
    created_at: datetime
    last_report_at: datetime
    status: str = "created"
    seq: int = 0
    orders_issued: int = 0
    # agency place -> the assignment filling it, while the unit is working on it
    active: dict[str, Assignment] = field(default_factory=dict)
    resolved: dict[str, Assignment] = field(default_factory=dict)
    # units that declined, dropped or were pulled off: never chosen again for this incident
    excluded: set[str] = field(default_factory=set)
    first_dispatched_at: datetime | None = None
    arrive_by: datetime | None = None
    # arrive_s counted from the report: when the citizen was promised someone on scene
    due_by: datetime | None = None
    resolve_by: datetime | None = None
    # since when the incident has had no unit at all (None while someone is on it)
    waiting_since: datetime | None = None
    arrived: bool = False
    # (level, reason) pairs already escalated: each is raised once per incident
    raised: set[tuple[int, str]] = field(default_factory=set)

    @property
    def is_open(self) -> bool:
        return self.status not in ("closed", "cancelled")

    def missing(self) -> list[str]:
        return [a for a in self.category.agencies if a not in self.active and a not in self.resolved]

    def role_of(self, agency: str) -> str:
        return "lead" if agency == self.category.agencies[0] else "support"


@dataclass
class DistrictState:
    district: str
    incidents: dict[str, Incident] = field(default_factory=dict)
    # report_id -> (incident_id, when it arrived), oldest first: a resent or duplicate report never becomes a
    # second incident (for RESENDS_KEPT)
    reports: OrderedDict[str, tuple[str, datetime]] = field(default_factory=OrderedDict)
    units: dict[str, Unit] = field(default_factory=dict)
    grid: Grid = field(default_factory=Grid)  # every unit on duty, busy or not, weighed by its seconds per metre
    # the free units, filed under the places they may fill: what a dispatch searches
    free: FiledGrid = field(default_factory=FiledGrid)
    # order_id -> (incident_id, agency place); kept after the order ends, to tell stale events apart, until
    # its incident is forgotten (CLOSED_KEPT)
    orders: dict[str, tuple[str, str]] = field(default_factory=dict)
    # incidents with an agency place no unit could fill yet
    queue: set[str] = field(default_factory=set)
    # the open incidents, filed under their category: what a report is checked against for being another call
    open_incidents: FiledGrid = field(default_factory=FiledGrid)
    load: StreetLoad = field(default_factory=StreetLoad)
    deadlines: DeadlineBook = field(default_factory=DeadlineBook)
    # the district's clock: the latest `at` of its work log (ticks included); never read from the machine
    now: datetime | None = None


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


CLOSEST_IDLE = DispatchPolicy(balance_streets=False, balance_in_time_only=False, preempt=False, queue_by_reach=False)


class DistrictCore:
    """Holds one district's state; `apply` takes one work item and returns the messages to publish."""

    def __init__(self, district: str, catalogue: Catalogue, policy: DispatchPolicy = DispatchPolicy()):
        self.state = DistrictState(district=district)
        self.catalogue = catalogue
        self.policy = policy

    # ------------------------------------------------------------------ entry

    def apply(self, item: WorkItem) -> list[Message]:
        out: list[Message] = []
        state = self.state
        if state.now is None or item.at > state.now:
            state.now = item.at
        # limits that ran out before this item arrived are dealt with before it
        self._fire_due(state.now, out)
        self._forget_old_reports(state.now)
        if item.kind == "report" and item.report is not None:
            self._on_report(item, item.report, out)
        elif item.kind == "unit_event" and item.unit_event is not None:
            self._on_unit_event(item, out)
        return out

    # ---------------------------------------------------------------- reports

    def _on_report(self, item: WorkItem, report: IncidentReport, out: list[Message]) -> None:
        state = self.state
        if report.report_id in state.reports:
            return
        category = self.catalogue.get(report.category)
        if category is None:
            # admitted under another catalogue (a roll-out in progress): kept, not dropped
            self._reject(item, "unknown_category", f"category {report.category!r} left the catalogue", out)
            return
        duplicate = self._find_duplicate(category, report.lat, report.lon, item.at)
        if duplicate is not None:
            incident, distance = duplicate
            state.reports[report.report_id] = (incident.incident_id, item.at)
            incident.last_report_at = item.at
            self._event(incident, "report_merged", item.at, out, {
                "report_id": report.report_id, "source": report.source, "distance_m": round(distance, 1)})
            return

        incident = Incident(
            incident_id=incident_id_for(state.district, report.report_id),
            report_id=report.report_id,
            category=category,
            priority=category.priority,
            street=item.street or "",
            lat=report.lat,
            lon=report.lon,
            address=report.address,
            created_at=item.at,
            last_report_at=item.at,
        )
        state.incidents[incident.incident_id] = incident
        state.reports[report.report_id] = (incident.incident_id, item.at)
        state.open_incidents.file(incident.incident_id, incident.lat, incident.lon, frozenset({category.code}))
        state.load.add(state.load.open_incidents, incident.street, 1)
        data = {
            "report_id": report.report_id,
            "category": category.code,
            "domain": category.domain,
            "priority": incident.priority,
            "district": state.district,
            "street": incident.street,
            "lat": report.lat,
            "lon": report.lon,
            "source": report.source,
            "reported_at": report.reported_at.isoformat(),
            "address": report.address,
            "description": report.description,
            "agencies": list(category.agencies),
            # no reporter: incident.events is read by many, and the reporter reaches the incident record on its
            # own topic from intake; an entry written before that (which may hold one) is read the same way
        }
        self._event(incident, "created", item.at, out, {k: v for k, v in data.items() if v is not None})
        incident.resolve_by = self.catalogue.deadline(category, item.at, category.sla.resolve_s)
        incident.due_by = self.catalogue.deadline(category, item.at, category.sla.arrive_s)
        state.deadlines.set(("resolve", incident.incident_id), incident.resolve_by)
        self._dispatch(incident, item.at, out)

    def _find_duplicate(self, category: Category, lat: float, lon: float, at: datetime):
        """The nearest open incident of the same category that this report is another call about."""
        incidents, window = self.state.incidents, timedelta(seconds=category.dedup.window_s)

        def recent(incident_id: str) -> bool:
            return at - incidents[incident_id].last_report_at <= window

        # ties in distance go to the smaller id
        hits = self.state.open_incidents.nearest((category.code,), lat, lon, 1, 1.0, recent,
                                                 within_m=category.dedup.radius_m)
        return (incidents[hits[0][2]], hits[0][1]) if hits else None

    # ------------------------------------------------------------- dispatching

    def _dispatch(self, incident: Incident, at: datetime, out: list[Message], *,
                  reason: str | None = None, replaces: str | None = None) -> None:
        """Fill every empty agency place of `incident` with the best free unit, or queue what cannot be filled.

        `reason` / `replaces` say why a place is being filled again (a decline, a log-off, …),
        which makes the event a `reassigned` rather than a `dispatched`.
        """
        state = self.state
        chosen: list[tuple[str, Unit, float]] = []
        explained: list[dict] = []
        taken: set[str] = set()
        bumped: list[tuple[Incident, str]] = []
        for agency in incident.missing():
            ranking = self._rank(incident, agency, taken)
            explained += [
                {"unit_id": uid, "agency": agency, "eta_s": round(eta, 1),
                 "street": state.units[uid].home_street,
                 "street_pressure": round(state.load.pressure(state.units[uid].home_street), 3)}
                for eta, _, uid in ranking[:CANDIDATES_EXPLAINED]
            ]
            pick = self._pick(ranking, incident, at)
            if pick is None and incident.priority == 1 and self.policy.preempt:
                pick = self._preemptable(incident, agency, taken)
                if pick is not None:
                    bumped.append(self._preempt(state.units[pick[1]], incident, at, out))
            if pick is not None:
                eta, unit_id = pick
                taken.add(unit_id)
                chosen.append((agency, state.units[unit_id], eta))

        if chosen:
            orders = [self._order(incident, agency, unit, eta, at) for agency, unit, eta in chosen]
            team = sorted(a.unit_id for a in incident.active.values())
            for order in orders:
                out.append(order.model_copy(update={"joint_with": [u for u in team if u != order.unit_id]}))
            data = {
                "units": [{"unit_id": o.unit_id, "agency": o.agency, "role": o.role, "order_id": o.order_id,
                           "eta_s": o.eta_s} for o in orders],
                "candidates": explained,
            }
            if reason:
                data["reason"] = reason
            if replaces:
                data["replaces"] = replaces
            self._event(incident, "reassigned" if replaces else "dispatched", at, out, data)
            if incident.first_dispatched_at is None:
                incident.first_dispatched_at = at
                incident.arrive_by = self.catalogue.deadline(incident.category, at, incident.category.sla.arrive_s)
                state.deadlines.set(("arrive", incident.incident_id), incident.arrive_by)

        for other, unit_id in bumped:
            # now that the unit holds its new order, the bumped task may find another free unit
            self._dispatch(other, at, out, reason="preempted", replaces=unit_id)

        missing = incident.missing()
        if missing and incident.incident_id not in state.queue:
            state.queue.add(incident.incident_id)
            self._event(incident, "queued", at, out, {
                "missing_agencies": missing, "reason": reason or "no_eligible_unit", "candidates": explained})
        elif not missing:
            state.queue.discard(incident.incident_id)
        self._watch_waiting(incident, at)

    def _watch_waiting(self, incident: Incident, at: datetime) -> None:
        """Start or stop the clocks of an incident that has nobody on it at all."""
        book, sla = self.state.deadlines, incident.category.sla
        if incident.active or not incident.is_open:
            incident.waiting_since = None
            book.drop(("waiting", incident.incident_id, 2))
            book.drop(("waiting", incident.incident_id, 3))
        elif incident.waiting_since is None:
            incident.waiting_since = at
            book.set(("waiting", incident.incident_id, 2), self.catalogue.deadline(incident.category, at, sla.ack_s))
            book.set(("waiting", incident.incident_id, 3),
                     self.catalogue.deadline(incident.category, at, sla.arrive_s))

    def _rank(self, incident: Incident, agency: str, taken: set[str]) -> list[tuple[float, float, str]]:
        return self.candidates(incident.category, agency, incident.lat, incident.lon, taken | incident.excluded)

    def candidates(self, category: Category, agency: str, lat: float, lon: float,
                   passed_over: Container[str] = ()) -> list[tuple[float, float, str]]:
        """The free units that may fill the `agency` place of a `category` incident at (lat, lon), fastest
        first, as (eta_s, distance_m, unit_id); at most CANDIDATES_PER_PLACE, none of `passed_over`."""
        # filed under one of the place's keys is what may_act_for says, so only the passed-over need a look
        return self.state.free.nearest(places_for(category, agency), lat, lon, CANDIDATES_PER_PLACE,
                                       FEWEST_SECONDS_PER_M,
                                       (lambda unit_id: unit_id not in passed_over) if passed_over else None)

    def _arrive_limit(self, incident: Incident, at: datetime) -> datetime:
        """When a unit sent at `at` must be on scene: the limit set by the first dispatch, or the one this one starts."""
        if incident.arrive_by is not None:
            return incident.arrive_by
        return self.catalogue.deadline(incident.category, at, incident.category.sla.arrive_s)

    @staticmethod
    def _arrival(at: datetime, eta_s: float) -> datetime:
        return at + timedelta(seconds=eta_s + REACH_MARGIN_S)

    def _pick(self, ranking: list[tuple[float, float, str]], incident: Incident,
              at: datetime) -> tuple[float, str] | None:
        """The fastest unit, except that among near-ties the one whose home street can spare it best wins."""
        if not ranking:
            return None
        if not self.policy.balance_streets:
            return ranking[0][0], ranking[0][2]
        best = ranking[0][0]
        near = [r for r in ranking if r[0] <= best + max(NEAR_TIE_S, NEAR_TIE_SHARE * best)]
        if self.policy.balance_in_time_only:
            # a slower unit that makes the limit late (or later) costs the incident more than the street gains
            limit = self._arrive_limit(incident, at)
            near = [r for r in near if self._arrival(at, r[0]) <= limit] or ranking[:1]
        load = self.state.load
        eta, _, unit_id = min(near, key=lambda r: (load.pressure(self.state.units[r[2]].home_street), r[0], r[2]))
        return eta, unit_id

    def _preemptable(self, incident: Incident, agency: str, taken: set[str]) -> tuple[float, str] | None:
        """For a priority-1 incident with no free unit: the fastest unit busy on a lower-priority task short of the scene."""
        units, incidents = self.state.units, self.state.incidents

        def eligible(unit_id: str) -> bool:
            unit = units[unit_id]
            if unit_id in taken or unit_id in incident.excluded or not unit.on_duty or not unit.available:
                return False
            if unit.order_id is None or unit.stage == "on_scene":
                return False
            return (incidents[unit.incident_id].priority > incident.priority
                    and unit.may_act_for(incident.category, agency))

        ranking = self.state.grid.nearest(incident.lat, incident.lon, 1, FEWEST_SECONDS_PER_M, eligible)
        return (ranking[0][0], ranking[0][2]) if ranking else None

    def _preempt(self, unit: Unit, by: Incident, at: datetime, out: list[Message]) -> tuple[Incident, str]:
        """Pull `unit` off its lower-priority task for `by`; that task is re-queued, and says so."""
        bumped = self.state.incidents[unit.incident_id]
        agency = self._withdraw(unit, bumped, at, out, exclude=False)
        self.state.queue.add(bumped.incident_id)
        self._event(bumped, "queued", at, out, {
            "reason": "preempted", "by_incident": by.incident_id, "unit_id": unit.unit_id,
            "missing_agencies": [agency]})
        return bumped, unit.unit_id

    def _order(self, incident: Incident, agency: str, unit: Unit, eta: float, at: datetime) -> DispatchOrder:
        incident.orders_issued += 1
        order_id = _order_id(incident, incident.orders_issued)
        role = incident.role_of(agency)
        ack_by = self.catalogue.deadline(incident.category, at, incident.category.sla.ack_s)
        incident.active[agency] = Assignment(order_id=order_id, unit_id=unit.unit_id, agency=agency, role=role,
                                             eta_s=round(eta, 1), issued_at=at, ack_by=ack_by)
        self.state.orders[order_id] = (incident.incident_id, agency)
        self._changing(unit, lambda: self._hold(unit, order_id, incident))
        self.state.deadlines.set(("ack", order_id), ack_by)
        return DispatchOrder(
            schema_version=1, order_id=order_id, kind="assign", incident_id=incident.incident_id,
            unit_id=unit.unit_id, role=role, agency=agency, category=incident.category.code,
            priority=incident.priority, lat=incident.lat, lon=incident.lon, address=incident.address,
            eta_s=round(eta, 1), ack_by=ack_by, issued_at=at,
        )

    @staticmethod
    def _hold(unit: Unit, order_id: str, incident: Incident) -> None:
        unit.order_id, unit.incident_id, unit.priority, unit.stage = order_id, incident.incident_id, incident.priority, "assigned"

    def _withdraw(self, unit: Unit, incident: Incident, at: datetime, out: list[Message], *, exclude: bool) -> str:
        """Take `unit` off `incident`: cancel its order and leave its place empty. Returns the agency place.

        With `exclude` the unit is never chosen for this incident again (it declined or walked away)."""
        agency = self.state.orders[unit.order_id][1]
        assignment = incident.active.pop(agency)
        self.state.deadlines.drop(("ack", assignment.order_id))
        if exclude:
            incident.excluded.add(unit.unit_id)
        out.append(DispatchOrder(
            schema_version=1, order_id=assignment.order_id, kind="cancel", incident_id=incident.incident_id,
            unit_id=unit.unit_id, role=assignment.role, agency=agency, category=incident.category.code,
            priority=incident.priority, lat=incident.lat, lon=incident.lon, address=incident.address,
            issued_at=at,
        ))
        self._release(unit)
        return agency

    def _release(self, unit: Unit) -> None:
        def clear() -> None:
            unit.order_id = unit.incident_id = unit.priority = unit.stage = None

        self._changing(unit, clear)

    def _changing(self, unit: Unit, change) -> None:
        """Apply `change` to the unit, keeping the per-street count of free units and the free-unit index right."""
        was = unit.free
        change()
        if unit.free != was:
            self.state.load.add(self.state.load.free_units, unit.home_street, 1 if unit.free else -1)
        self._refile(unit)

    def _refile(self, unit: Unit) -> None:
        if unit.free:
            self.state.free.file(unit.unit_id, unit.lat, unit.lon, unit.authorities(), unit.seconds_per_m)
        else:
            self.state.free.remove(unit.unit_id)

    def _offer(self, unit: Unit, at: datetime, out: list[Message]) -> None:
        """A unit has come free: queued incidents it could serve are dispatched again, most urgent first."""
        state = self.state
        incidents = state.incidents
        if self.policy.queue_by_reach:
            def order(i: str) -> tuple:
                return self._reach_order(unit, incidents[i], at)
        else:
            def order(i: str) -> tuple:
                return incidents[i].priority, incidents[i].created_at, i
        for incident_id in sorted(state.queue, key=order):
            if not unit.free:
                return
            incident = state.incidents[incident_id]
            if unit.unit_id in incident.excluded:
                continue
            if any(unit.may_act_for(incident.category, a) for a in incident.missing()):
                self._dispatch(incident, at, out, reason="unit_available")

    def _reach_order(self, unit: Unit, incident: Incident, at: datetime) -> tuple:
        """Priority first, always: a fight never waits behind a parking complaint. Within a priority, the
        incidents this unit can reach within the arrive limit come first, and of those the ones whose promise
        to the citizen (the limit counted from the report) can still be kept, earliest promise first, so the
        unit saves the most promises it can; the rest, oldest first, as before."""
        eta = unit.eta_s(distance_m(unit.lat, unit.lon, incident.lat, incident.lon))
        arrival = self._arrival(at, eta)
        in_time = arrival <= self._arrive_limit(incident, at)
        kept = arrival <= incident.due_by
        return (incident.priority, not in_time, not kept, incident.due_by if kept else incident.created_at,
                incident.created_at, incident.incident_id)

    # ------------------------------------------------------------- unit events

    def _on_unit_event(self, item: WorkItem, out: list[Message]) -> None:
        event = item.unit_event
        state = self.state
        unit = state.units.get(event.unit_id)
        if isinstance(event, LogOn):
            self._log_on(event, item.at, out)
            return
        if unit is None:
            self._reject(item, "unknown_unit", f"unit {event.unit_id!r} is not known to {state.district}", out)
            return
        if isinstance(event, LogOff):
            if unit.order_id is not None:
                self._replace(unit, item.at, out, reason="log_off")
            self._changing(unit, lambda: setattr(unit, "on_duty", False))
            state.grid.remove(unit.unit_id)
        elif isinstance(event, Location):
            unit.lat, unit.lon = event.lat, event.lon
            if unit.on_duty:
                state.grid.place(unit.unit_id, event.lat, event.lon, unit.seconds_per_m)
            self._refile(unit)
        elif isinstance(event, Availability):
            self._changing(unit, lambda: setattr(unit, "available", event.type == "available"))
            self._offer(unit, item.at, out)
        elif isinstance(event, (OrderStatus, Resolved)):
            self._on_order_status(item, unit, event, out)

    def _log_on(self, event: LogOn, at: datetime, out: list[Message]) -> None:
        state = self.state
        unit = state.units.get(event.unit_id)
        if unit is None:
            unit = state.units[event.unit_id] = Unit(
                unit_id=event.unit_id, agency=event.agency, kind=event.kind, home_street=event.home_street,
                mode=event.mode, delegations=frozenset(event.delegations), lat=event.lat, lon=event.lon,
                on_duty=False,
            )

        def update() -> None:
            unit.agency, unit.kind, unit.mode = event.agency, event.kind, event.mode
            unit.delegations = frozenset(event.delegations)
            unit.lat, unit.lon = event.lat, event.lon
            unit.on_duty = unit.available = True

        if unit.home_street != event.home_street:
            # move the unit's weight to its new home street
            self._changing(unit, lambda: setattr(unit, "on_duty", False))
            unit.home_street = event.home_street
        self._changing(unit, update)
        state.grid.place(unit.unit_id, event.lat, event.lon, unit.seconds_per_m)
        self._offer(unit, at, out)

    def _on_order_status(self, item: WorkItem, unit: Unit, event, out: list[Message]) -> None:
        state = self.state
        if unit.order_id != event.order_id or event.order_id not in state.orders:
            self._reject(item, "unit_not_assigned",
                         f"unit {unit.unit_id} does not hold order {event.order_id}", out)
            return
        incident_id, agency = state.orders[event.order_id]
        incident = state.incidents[incident_id]
        assignment = incident.active[agency]
        if event.type == "decline":
            self._replace(unit, item.at, out, reason="declined")
            self._offer(unit, item.at, out)
            return
        stage = STAGE_OF_EVENT[event.type]
        if STAGES.index(stage) <= STAGES.index(assignment.stage):
            return  # a resend, or news overtaken by later news: nothing changes
        at = item.at
        data = {"unit_id": unit.unit_id, "order_id": assignment.order_id, "agency": agency,
                **self._timing(incident, at)}
        # the figures the command centre's SLA statistics are made of: each limit met or not, and how long it took
        if assignment.stage == "assigned":
            data.update(since_order_s=_seconds(at - assignment.issued_at), ack_on_time=at <= assignment.ack_by)
        if STAGES.index(stage) >= STAGES.index("on_scene") and not incident.arrived:
            incident.arrived = True
            state.deadlines.drop(("arrive", incident.incident_id))
            data.update(since_dispatch_s=_seconds(at - incident.first_dispatched_at),
                        arrive_on_time=at <= incident.arrive_by)
        assignment.stage = unit.stage = stage
        state.deadlines.drop(("ack", assignment.order_id))
        if isinstance(event, Resolved):
            data.update({k: v for k, v in (("outcome", event.outcome), ("notes", event.notes)) if v})
        self._event(incident, stage, item.at, out, data)
        if stage == "resolved":
            incident.resolved[agency] = incident.active.pop(agency)
            self._release(unit)
            if not incident.active:
                self._close(incident, item.at, out)
            self._offer(unit, item.at, out)

    def _replace(self, unit: Unit, at: datetime, out: list[Message], reason: str) -> None:
        """The unit drops its task (declined, logged off): cancel its order and fill its place again."""
        incident = self.state.incidents[unit.incident_id]
        self._withdraw(unit, incident, at, out, exclude=True)
        self._dispatch(incident, at, out, reason=reason, replaces=unit.unit_id)

    def _close(self, incident: Incident, at: datetime, out: list[Message]) -> None:
        state = self.state
        # a joint place still waiting in the queue is no longer needed once the others have resolved it
        state.queue.discard(incident.incident_id)
        state.open_incidents.remove(incident.incident_id)
        state.load.add(state.load.open_incidents, incident.street, -1)
        for key in (("arrive", incident.incident_id), ("resolve", incident.incident_id),
                    ("waiting", incident.incident_id, 2), ("waiting", incident.incident_id, 3)):
            state.deadlines.drop(key)
        state.deadlines.set(("forget", incident.incident_id), at + CLOSED_KEPT)
        self._event(incident, "closed", at, out, {
            "units": sorted(a.unit_id for a in incident.resolved.values()),
            "open_s": _seconds(at - incident.created_at), "resolve_on_time": at <= incident.resolve_by,
            **self._timing(incident, at)})

    @staticmethod
    def _timing(incident: Incident, at: datetime) -> dict:
        return {"category": incident.category.code, "domain": incident.category.domain,
                "priority": incident.priority, "since_created_s": _seconds(at - incident.created_at)}

    # -------------------------------------------------------------- SLA ladder

    def _fire_due(self, now: datetime, out: list[Message]) -> None:
        state = self.state
        for due, key in state.deadlines.pop_due(now):
            kind = key[0]
            if kind == "ack":
                self._ack_overdue(key[1], due, out)
                continue
            if kind == "forget":
                self._forget(state.incidents[key[1]])
                continue
            incident = state.incidents[key[1]]
            if not incident.is_open:
                continue
            if kind == "arrive" and not incident.arrived:
                self._escalate(incident, 2, "arrival_overdue", due, out)
            elif kind == "resolve":
                self._escalate(incident, 3, "resolve_overdue", due, out)
            elif kind == "waiting" and not incident.active:
                self._escalate(incident, key[2], "no_eligible_unit", due, out)

    def _forget(self, incident: Incident) -> None:
        """A day after closing: the incident and its orders leave memory (their events are in the audit trail)."""
        state = self.state
        del state.incidents[incident.incident_id]
        for n in range(1, incident.orders_issued + 1):
            state.orders.pop(_order_id(incident, n), None)

    def _forget_old_reports(self, now: datetime) -> None:
        """Report ids older than RESENDS_KEPT whose incident has left memory, oldest first."""
        reports, incidents, horizon = self.state.reports, self.state.incidents, now - RESENDS_KEPT
        while reports:
            report_id, (incident_id, arrived_at) = next(iter(reports.items()))
            if arrived_at > horizon or incident_id in incidents:
                return
            del reports[report_id]

    def _ack_overdue(self, order_id: str, due: datetime, out: list[Message]) -> None:
        """Level 1: the unit did not acknowledge in time. Its order is cancelled and the task goes to the next best unit."""
        state = self.state
        incident_id, agency = state.orders[order_id]
        incident = state.incidents[incident_id]
        assignment = incident.active.get(agency)
        if assignment is None or assignment.order_id != order_id or assignment.stage != "assigned":
            return
        unit = state.units[assignment.unit_id]
        now = state.now
        self._escalate(incident, 1, "ack_overdue", due, out, unit_id=unit.unit_id)
        self._withdraw(unit, incident, now, out, exclude=True)
        # a unit that does not answer is not offered other work until it says it is available
        self._changing(unit, lambda: setattr(unit, "available", False))
        self._dispatch(incident, now, out, reason="ack_overdue", replaces=unit.unit_id)

    def _escalate(self, incident: Incident, level: int, reason: str, deadline: datetime, out: list[Message],
                  **detail) -> None:
        if (level, reason) in incident.raised:
            return
        incident.raised.add((level, reason))
        escalation_id = f"{incident.incident_id}:L{level}:{reason}"
        at = self.state.now
        self._event(incident, "escalated", at, out, {
            "escalation_id": escalation_id, "level": level, "reason": reason, "deadline": deadline.isoformat(),
            **detail})
        out.append(Escalation(
            schema_version=1, escalation_id=escalation_id, incident_id=incident.incident_id, level=level,
            reason=reason, deadline=deadline, at=at, district=self.state.district, street=incident.street,
            category=incident.category.code,
        ))

    # ---------------------------------------------------------------- helpers

    def _event(self, incident: Incident, type_: str, at: datetime, out: list[Message], data: dict) -> None:
        incident.seq += 1
        if type_ not in ("report_merged", "queued", "escalated"):
            incident.status = type_
        out.append(IncidentEvent(
            schema_version=1, event_id=f"{incident.incident_id}:{incident.seq}", incident_id=incident.incident_id,
            seq=incident.seq, type=type_, at=at, data=data,
        ))

    @staticmethod
    def _reject(item: WorkItem, reason: str, error: str, out: list[Message]) -> None:
        if item.provenance is not None:
            out.append(dead_letter(item.provenance, Rejected(reason, error), item.at))
