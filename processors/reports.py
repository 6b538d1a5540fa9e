"""Report intake inside a district: a new report opens an incident and dispatches it, another call about an
open incident is merged into it, a resent report changes nothing — for as long as its id is remembered — and a
report under a used id whose content differs from the first is a dead letter (`conflicting_resend`), never a silent
drop: two producers' reports under one id would otherwise lose the second."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from processors.catalogue import Category
from processors.dead_letters import reject_item
from processors.dispatch import dispatch
from processors.district_state import DistrictState
from processors.incidents import Incident, incident_id_for, record_event
from processors.messages import IncidentReport, Message, WorkItem

if TYPE_CHECKING:
    from processors.district import DistrictCore

# How long a report id is remembered after it arrived (and at least as long as its incident is in memory): a
# producer resending a report does so within minutes or hours, not a week; a week-old report id is forgotten so
# that the core's memory is bounded by what a week brings, not by its whole history.
RESENDS_KEPT = timedelta(days=7)


def content_fingerprint(report: IncidentReport) -> str:
    """What a report says — its category, place, address and description — as a SHA-256: a resend says the same.
    Not its reported_at (a gateway stamps each send), nor its reporter (taken off at intake), nor its attributes."""
    said = [report.category, report.lat, report.lon, report.address, report.description]
    return hashlib.sha256(json.dumps(said, ensure_ascii=False).encode("utf-8")).hexdigest()


def on_report(core: DistrictCore, item: WorkItem, report: IncidentReport, out: list[Message]) -> None:
    state = core.state
    fingerprint = content_fingerprint(report)
    known = state.reports.get(report.report_id)
    if known is not None:
        first = known[2]
        if first is not None and first != fingerprint:  # None: remembered from before fingerprints were kept
            reject_item(item, "conflicting_resend",
                        f"report_id {report.report_id!r} was first reported with other content (incident "
                        f"{known[0]}): a resend must repeat the report; a new report needs a new id", out)
        return
    category = core.catalogue.get(report.category)
    if category is None:
        # admitted under another catalogue (a roll-out in progress): kept, not dropped
        reject_item(item, "unknown_category", f"category {report.category!r} left the catalogue", out)
        return
    duplicate = find_duplicate(state, category, report.lat, report.lon, item.at)
    if duplicate is not None:
        incident, distance = duplicate
        state.reports[report.report_id] = (incident.incident_id, item.at, fingerprint)
        incident.last_report_at = item.at
        record_event(incident, "report_merged", item.at, out, {
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
    state.reports[report.report_id] = (incident.incident_id, item.at, fingerprint)
    state.open_incidents.file(incident.incident_id, incident.lat, incident.lon, frozenset({category.code}))
    state.load.add(state.load.open_incidents, incident.street, 1)
    record_event(incident, "created", item.at, out, _created(state, incident, report))
    incident.resolve_by = core.catalogue.deadline(category, item.at, category.sla.resolve_s)
    incident.due_by = core.catalogue.deadline(category, item.at, category.sla.arrive_s)
    state.deadlines.set(("resolve", incident.incident_id), incident.resolve_by)
    state.deadlines.set(("due", incident.incident_id), incident.due_by)
    dispatch(core, incident, item.at, out)


def _created(state: DistrictState, incident: Incident, report: IncidentReport) -> dict:
    """The `created` event's data: the report as the incident's first word, its empty fields left out."""
    category = incident.category
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
        "agencies": list(category.agencies),
        # no reporter and no description: incident.events is read by many, and both reach the incident record on
        # their own topic from intake; an entry written before that (which may hold them) is read the same way
    }
    return {k: v for k, v in data.items() if v is not None}


def find_duplicate(state: DistrictState, category: Category, lat: float, lon: float, at: datetime):
    """The nearest open incident of the same category that this report is another call about."""
    incidents, window = state.incidents, timedelta(seconds=category.dedup.window_s)

    def recent(incident_id: str) -> bool:
        return at - incidents[incident_id].last_report_at <= window

    # ties in distance go to the smaller id
    hits = state.open_incidents.nearest((category.code,), lat, lon, 1, 1.0, recent,
                                        within_m=category.dedup.radius_m)
    return (incidents[hits[0][2]], hits[0][1]) if hits else None


def forget_old_reports(state: DistrictState, now: datetime) -> None:
    """Report ids older than RESENDS_KEPT whose incident has left memory, oldest first."""
    reports, incidents, horizon = state.reports, state.incidents, now - RESENDS_KEPT
    while reports:
        report_id, (incident_id, arrived_at, _) = next(iter(reports.items()))
        if arrived_at > horizon or incident_id in incidents:
            return
        del reports[report_id]
