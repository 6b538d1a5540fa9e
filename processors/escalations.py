"""The SLA ladder: what happens when a district's time limits run out — an unacknowledged order goes to the
next unit (level 1), a late arrival or resolution, or an incident nobody can take, is escalated (levels 2 and
3), once each, as is the promise to the citizen counted from the report (`due_by`, level 2); a resolved incident
whose verification window ran out is closed as unverified; and a closed incident is forgotten a day after closing."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from processors.dispatch import dispatch
from processors.district_state import DistrictState, changing
from processors.incidents import Incident, order_id, record_event
from processors.messages import Escalation, Message
from processors.orders import withdraw
from processors.verification import verification_due

if TYPE_CHECKING:
    from processors.district import DistrictCore


def fire_due(core: DistrictCore, now: datetime, out: list[Message]) -> None:
    """Deal with every limit due at or before `now`, earliest first."""
    state = core.state
    for due, key in state.deadlines.pop_due(now):
        kind = key[0]
        if kind == "ack":
            ack_overdue(core, key[1], due, out)
            continue
        if kind == "forget":
            forget(state, state.incidents[key[1]])
            continue
        incident = state.incidents[key[1]]
        if not incident.is_open:
            continue
        if kind == "arrive" and not incident.arrived:
            escalate(state, incident, 2, "arrival_overdue", due, out)
        elif kind == "resolve":
            escalate(state, incident, 3, "resolve_overdue", due, out)
        elif kind == "waiting" and not incident.active:
            escalate(state, incident, key[2], "no_eligible_unit", due, out)
        elif kind == "due" and not incident.arrived and not _promise_covered(core, incident, due):
            escalate(state, incident, 2, "promise_overdue", due, out)
        elif kind == "verify":
            verification_due(core, incident, state.now, out)


def _promise_covered(core: DistrictCore, incident: Incident, due: datetime) -> bool:
    """Whether the promise to the citizen (`due_by`, counted from the report) runs out at the very moment another
    arrival limit does — the dispatch's own (arrive_by) or that of an incident nobody has been on since its
    report — which then is the one breach escalated, not two."""
    if incident.arrive_by == due:
        return True
    waiting = incident.waiting_since
    return (waiting is not None and not incident.active
            and core.catalogue.deadline(incident.category, waiting, incident.category.sla.arrive_s) == due)


def forget(state: DistrictState, incident: Incident) -> None:
    """A day after closing: the incident and its orders leave memory (their events are in the audit trail)."""
    del state.incidents[incident.incident_id]
    for n in range(1, incident.orders_issued + 1):
        state.orders.pop(order_id(incident, n), None)


def ack_overdue(core: DistrictCore, order: str, due: datetime, out: list[Message]) -> None:
    """Level 1: the unit did not acknowledge in time. Its order is cancelled and the task goes to the next best unit."""
    state = core.state
    incident_id, agency = state.orders[order]
    incident = state.incidents[incident_id]
    assignment = incident.active.get(agency)
    if assignment is None or assignment.order_id != order or assignment.stage != "assigned":
        return
    unit = state.units[assignment.unit_id]
    now = state.now
    escalate(state, incident, 1, "ack_overdue", due, out, unit_id=unit.unit_id)
    withdraw(state, unit, incident, now, out, exclude=True)
    # a unit that does not answer is not offered other work until it says it is available
    changing(state, unit, lambda: setattr(unit, "available", False))
    dispatch(core, incident, now, out, reason="ack_overdue", replaces=unit.unit_id)


def escalate(state: DistrictState, incident: Incident, level: int, reason: str, deadline: datetime,
             out: list[Message], **detail) -> None:
    """Raise (level, reason) for the incident, once: an `escalated` event and the escalation itself, at the district's now."""
    if (level, reason) in incident.raised:
        return
    incident.raised.add((level, reason))
    escalation_id = f"{incident.incident_id}:L{level}:{reason}"
    at = state.now
    record_event(incident, "escalated", at, out, {
        "escalation_id": escalation_id, "level": level, "reason": reason, "deadline": deadline.isoformat(),
        **detail})
    out.append(Escalation(
        schema_version=1, escalation_id=escalation_id, incident_id=incident.incident_id, level=level,
        reason=reason, deadline=deadline, at=at, district=state.district, street=incident.street,
        category=incident.category.code,
    ))
