"""What the units tell their district: logging on and off, where they are, whether they are available, and how
far they have got with their orders — up to the resolution after which an incident awaits verification."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from processors.dead_letters import reject_item
from processors.dispatch import offer, replace
from processors.district_state import changing, refile, release
from processors.incidents import record_event, seconds, timing
from processors.messages import Availability, Location, LogOff, LogOn, Message, OrderStatus, Resolved, WorkItem
from processors.units import STAGE_OF_EVENT, STAGES, Unit, implausible_move
from processors.verification import await_verification, close  # noqa: F401  (close: importable from here as before)

if TYPE_CHECKING:
    from processors.district import DistrictCore


def on_unit_event(core: DistrictCore, item: WorkItem, out: list[Message]) -> None:
    event = item.unit_event
    state = core.state
    unit = state.units.get(event.unit_id)
    if isinstance(event, LogOn):
        log_on(core, event, item.at, out)
        return
    if unit is None:
        reject_item(item, "unknown_unit", f"unit {event.unit_id!r} is not known to {state.district}", out)
        return
    if isinstance(event, LogOff):
        if unit.order_id is not None:
            replace(core, unit, item.at, out, reason="log_off")
        changing(state, unit, lambda: setattr(unit, "on_duty", False))
        state.grid.remove(unit.unit_id)
    elif isinstance(event, Location):
        if (why := implausible_move(unit, event.lat, event.lon, item.at)) is not None:
            reject_item(item, "implausible_location", why, out)
            return
        unit.lat, unit.lon, unit.located_at = event.lat, event.lon, item.at
        if unit.on_duty:
            state.grid.place(unit.unit_id, event.lat, event.lon, unit.seconds_per_m)
        refile(state, unit)
    elif isinstance(event, Availability):
        changing(state, unit, lambda: setattr(unit, "available", event.type == "available"))
        offer(core, unit, item.at, out)
    elif isinstance(event, (OrderStatus, Resolved)):
        on_order_status(core, item, unit, event, out)


def log_on(core: DistrictCore, event: LogOn, at: datetime, out: list[Message]) -> None:
    state = core.state
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
        unit.lat, unit.lon, unit.located_at = event.lat, event.lon, at
        unit.on_duty = unit.available = True

    if unit.home_street != event.home_street:
        # move the unit's weight to its new home street
        changing(state, unit, lambda: setattr(unit, "on_duty", False))
        unit.home_street = event.home_street
    changing(state, unit, update)
    state.grid.place(unit.unit_id, event.lat, event.lon, unit.seconds_per_m)
    offer(core, unit, at, out)


def on_order_status(core: DistrictCore, item: WorkItem, unit: Unit, event, out: list[Message]) -> None:
    state = core.state
    if unit.order_id != event.order_id or event.order_id not in state.orders:
        reject_item(item, "unit_not_assigned", f"unit {unit.unit_id} does not hold order {event.order_id}", out)
        return
    incident_id, agency = state.orders[event.order_id]
    incident = state.incidents[incident_id]
    assignment = incident.active[agency]
    if event.type == "decline":
        replace(core, unit, item.at, out, reason="declined")
        offer(core, unit, item.at, out)
        return
    stage = STAGE_OF_EVENT[event.type]
    if STAGES.index(stage) <= STAGES.index(assignment.stage):
        return  # a resend, or news overtaken by later news: nothing changes
    at = item.at
    data = {"unit_id": unit.unit_id, "order_id": assignment.order_id, "agency": agency, **timing(incident, at)}
    # the figures the command centre's SLA statistics are made of: each limit met or not, and how long it took
    if assignment.stage == "assigned":
        data.update(since_order_s=seconds(at - assignment.issued_at), ack_on_time=at <= assignment.ack_by)
    if STAGES.index(stage) >= STAGES.index("on_scene") and not incident.arrived:
        incident.arrived = True
        state.deadlines.drop(("arrive", incident.incident_id))
        state.deadlines.drop(("due", incident.incident_id))
        data.update(since_dispatch_s=seconds(at - incident.first_dispatched_at),
                    arrive_on_time=at <= incident.arrive_by)
    assignment.stage = unit.stage = stage
    state.deadlines.drop(("ack", assignment.order_id))
    if isinstance(event, Resolved):
        data.update({k: v for k, v in (("outcome", event.outcome), ("notes", event.notes)) if v})
    record_event(incident, stage, item.at, out, data)
    if stage == "resolved":
        incident.resolved[agency] = incident.active.pop(agency)
        release(state, unit)
        # a joint incident stays open while an agency's place is still waiting for its unit
        if not incident.active and not incident.missing():
            # resolved is not closed: the complainant is asked first (核查结案)
            await_verification(core, incident, item.at, out)
        offer(core, unit, item.at, out)
