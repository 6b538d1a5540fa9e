"""Snapshots of a district core: its whole state as plain JSON data, and the core made again from it.

A worker taking a district over loads the latest snapshot and replays only the work-log entries after it, so
that a takeover costs the same whatever the log's age, and the log need not be kept for ever. The document
holds what the core decides by — incidents, report ids, units, orders, the queue, street loads, deadlines and
the district's clock — in the order it holds them; the spatial indexes are filed again from the units and
incidents. Restored, the core makes exactly the decisions the full replay would (tests/processors/test_snapshot.py).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict
from datetime import datetime

from processors.catalogue import Catalogue, Category
from processors.district import DispatchPolicy, DistrictCore
from processors.incidents import Incident
from processors.units import Assignment, Unit

FORMAT = 1

_INCIDENT_TIMES = ("created_at", "last_report_at", "first_dispatched_at", "arrive_by", "due_by", "resolve_by",
                   "waiting_since", "resolved_at")


def snapshot(core: DistrictCore) -> dict:
    """The core's state as JSON-ready data."""
    state = core.state
    categories = {i.category.code: i.category.model_dump() for i in state.incidents.values()}
    return {
        "format": FORMAT,
        "district": state.district,
        "now": _time(state.now),
        "categories": categories,
        "incidents": [_incident_doc(i) for i in state.incidents.values()],
        "reports": [[report_id, incident_id, _time(at), fingerprint]
                    for report_id, (incident_id, at, fingerprint) in state.reports.items()],
        "units": [_unit_doc(u) for u in state.units.values()],
        "orders": [[order_id, incident_id, agency] for order_id, (incident_id, agency) in state.orders.items()],
        "queue": sorted(state.queue),
        "open_incidents": list(state.open_incidents),
        "load": {"open_incidents": list(state.load.open_incidents.items()),
                 "free_units": list(state.load.free_units.items())},
        "deadlines": [[list(key), _time(due)] for key, due in state.deadlines.entries()],
    }


def restore(doc: dict, catalogue: Catalogue, policy: DispatchPolicy = DispatchPolicy()) -> DistrictCore:
    """The core a snapshot was taken of. A category that has left the catalogue since is kept as it was."""
    if doc.get("format") != FORMAT:
        raise ValueError(f"snapshot format {doc.get('format')!r} is not one this release reads ({FORMAT})")
    core = DistrictCore(doc["district"], catalogue, policy)
    state = core.state
    state.now = _parse_time(doc["now"])
    kept = {code: catalogue.get(code) or Category.model_validate(c) for code, c in doc["categories"].items()}
    for d in doc["incidents"]:
        incident = _incident(d, kept[d["category"]])
        state.incidents[incident.incident_id] = incident
    # a snapshot taken before fingerprints were kept has none: those ids' resends are recognised, not compared
    state.reports = OrderedDict((r, (i, _parse_time(at), *(fp or [None]))) for r, i, at, *fp in doc["reports"])
    for d in doc["units"]:
        unit = _unit(d)
        state.units[unit.unit_id] = unit
        # the indexes, filed as the core files them: every unit on duty in the grid, the free ones by authority
        if unit.on_duty:
            state.grid.place(unit.unit_id, unit.lat, unit.lon, unit.seconds_per_m)
        if unit.free:
            state.free.file(unit.unit_id, unit.lat, unit.lon, unit.authorities(), unit.seconds_per_m)
    state.orders = {order_id: (incident_id, agency) for order_id, incident_id, agency in doc["orders"]}
    state.queue = set(doc["queue"])
    for incident_id in doc["open_incidents"]:
        incident = state.incidents[incident_id]
        state.open_incidents.file(incident_id, incident.lat, incident.lon, frozenset({incident.category.code}))
    state.load.open_incidents = dict(map(tuple, doc["load"]["open_incidents"]))
    state.load.free_units = dict(map(tuple, doc["load"]["free_units"]))
    for key, due in doc["deadlines"]:
        state.deadlines.set(tuple(key), _parse_time(due))
    return core


def _incident_doc(incident: Incident) -> dict:
    doc = {k: v for k, v in vars(incident).items()
           if k not in ("category", "active", "resolved", "excluded", "raised", *_INCIDENT_TIMES)}
    doc.update({
        "category": incident.category.code,
        "active": {agency: _assignment_doc(a) for agency, a in incident.active.items()},
        "resolved": {agency: _assignment_doc(a) for agency, a in incident.resolved.items()},
        "excluded": sorted(incident.excluded),
        "raised": sorted([level, reason] for level, reason in incident.raised),
        **{k: _time(getattr(incident, k)) for k in _INCIDENT_TIMES},
    })
    return doc


def _incident(doc: dict, category: Category) -> Incident:
    fields = {k: v for k, v in doc.items() if k not in ("category", "active", "resolved", "excluded", "raised")}
    fields.update({k: _parse_time(doc.get(k)) for k in _INCIDENT_TIMES})  # a field newer than the snapshot: its default
    return Incident(
        **fields, category=category,
        active={agency: _assignment(a) for agency, a in doc["active"].items()},
        resolved={agency: _assignment(a) for agency, a in doc["resolved"].items()},
        excluded=set(doc["excluded"]), raised={(level, reason) for level, reason in doc["raised"]},
    )


def _assignment_doc(assignment: Assignment) -> dict:
    return {**asdict(assignment), "issued_at": _time(assignment.issued_at), "ack_by": _time(assignment.ack_by)}


def _assignment(doc: dict) -> Assignment:
    return Assignment(**{**doc, "issued_at": _parse_time(doc["issued_at"]), "ack_by": _parse_time(doc["ack_by"])})


def _unit_doc(unit: Unit) -> dict:
    return {**asdict(unit), "delegations": sorted(unit.delegations), "located_at": _time(unit.located_at)}


def _unit(doc: dict) -> Unit:
    # a snapshot from before located_at was kept has none: the unit's next location is then taken as it comes
    return Unit(**{**doc, "delegations": frozenset(doc["delegations"]),
                   "located_at": _parse_time(doc.get("located_at"))})


def _time(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None
