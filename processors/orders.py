"""Dispatch orders: giving a unit an incident's agency place (an `assign`) and taking it back (a `cancel`),
with the acknowledgement limit each order starts and the unit's status kept in step."""

from __future__ import annotations

from datetime import datetime

from processors.catalogue import Catalogue
from processors.district_state import DistrictState, changing, hold, release
from processors.incidents import Incident, order_id
from processors.messages import DispatchOrder, Message
from processors.units import Assignment, Unit


def assign(state: DistrictState, catalogue: Catalogue, incident: Incident, agency: str, unit: Unit, eta: float,
           at: datetime, *, place: str | None = None) -> DispatchOrder:
    """Give `unit` the `agency` place of `incident`; returns the order to send it (without its team).

    `place` names a place beyond the category's own (a unit a dispatcher adds): it supports, for `agency`."""
    incident.orders_issued += 1
    new_id = order_id(incident, incident.orders_issued)
    role = "support" if place else incident.role_of(agency)
    ack_by = catalogue.deadline(incident.category, at, incident.category.sla.ack_s)
    incident.active[place or agency] = Assignment(order_id=new_id, unit_id=unit.unit_id, agency=agency, role=role,
                                                  eta_s=round(eta, 1), issued_at=at, ack_by=ack_by)
    state.orders[new_id] = (incident.incident_id, place or agency)
    changing(state, unit, lambda: hold(unit, new_id, incident))
    state.deadlines.set(("ack", new_id), ack_by)
    return DispatchOrder(
        schema_version=1, order_id=new_id, kind="assign", incident_id=incident.incident_id,
        unit_id=unit.unit_id, role=role, agency=agency, category=incident.category.code,
        priority=incident.priority, lat=incident.lat, lon=incident.lon, address=incident.address,
        eta_s=round(eta, 1), ack_by=ack_by, issued_at=at,
    )


def withdraw(state: DistrictState, unit: Unit, incident: Incident, at: datetime, out: list[Message], *,
             exclude: bool) -> str:
    """Take `unit` off `incident`: cancel its order and leave its place empty. Returns the agency place.

    With `exclude` the unit is never chosen for this incident again (it declined or walked away)."""
    agency = state.orders[unit.order_id][1]
    assignment = incident.active.pop(agency)
    state.deadlines.drop(("ack", assignment.order_id))
    if exclude:
        incident.excluded.add(unit.unit_id)
    out.append(DispatchOrder(
        schema_version=1, order_id=assignment.order_id, kind="cancel", incident_id=incident.incident_id,
        unit_id=unit.unit_id, role=assignment.role, agency=assignment.agency, category=incident.category.code,
        priority=incident.priority, lat=incident.lat, lon=incident.lon, address=incident.address,
        issued_at=at,
    ))
    release(state, unit)
    return agency
