"""The district core: one district's state and the decisions it makes for each entry of its work log.

Deterministic by construction: the only clock is the work item's `at`, ids are
derived from the log's content, so replaying a district's log reproduces every
decision and every emitted message byte for byte.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from processors.catalogue import Catalogue
from processors.messages import IncidentEvent, IncidentReport, Message, WorkItem


def incident_id_for(district: str, report_id: str) -> str:
    """Derived from the first report, not from a counter: report ids are unique for good, while a
    counter restarts with a new log and would reuse ids already in the audit trail."""
    digest = hashlib.sha256(report_id.encode()).hexdigest()[:12].upper()
    return f"INC-{district}-{digest}"


@dataclass
class Incident:
    incident_id: str
    report_id: str
    category: str
    priority: int
    street: str
    status: str = "created"
    seq: int = 0


@dataclass
class DistrictState:
    district: str
    incidents: dict[str, Incident] = field(default_factory=dict)
    # report_id -> incident_id: a resent report is the same report, never a second incident
    reports: dict[str, str] = field(default_factory=dict)


class DistrictCore:
    """Holds one district's state; `apply` takes one work item and returns the messages to publish."""

    def __init__(self, district: str, catalogue: Catalogue):
        self.state = DistrictState(district=district)
        self.catalogue = catalogue

    def apply(self, item: WorkItem) -> list[Message]:
        if item.kind == "report" and item.report is not None:
            return self._on_report(item, item.report)
        return []

    def _on_report(self, item: WorkItem, report: IncidentReport) -> list[Message]:
        state = self.state
        if report.report_id in state.reports:
            return []
        category = self.catalogue.get(report.category)
        if category is None:
            # intake admitted it under another catalogue (a catalogue roll-out); it is kept
            # as an incident of unknown priority rather than dropped
            priority = 5
        else:
            priority = category.priority
        incident_id = incident_id_for(state.district, report.report_id)
        incident = Incident(
            incident_id=incident_id,
            report_id=report.report_id,
            category=report.category,
            priority=priority,
            street=item.street or "",
        )
        state.incidents[incident_id] = incident
        state.reports[report.report_id] = incident_id
        data = {
            "report_id": report.report_id,
            "category": report.category,
            "domain": category.domain if category else None,
            "priority": priority,
            "district": state.district,
            "street": incident.street,
            "lat": report.lat,
            "lon": report.lon,
            "source": report.source,
            "reported_at": report.reported_at.isoformat(),
            "address": report.address,
            "description": report.description,
            # the incident record is the one place a reporter's personal data is kept
            "reporter": report.reporter.model_dump(exclude_none=True) if report.reporter else None,
        }
        return [self._event(incident, "created", item, {k: v for k, v in data.items() if v is not None})]

    def _event(self, incident: Incident, type_: str, item: WorkItem, data: dict) -> IncidentEvent:
        incident.seq += 1
        return IncidentEvent(
            schema_version=1,
            event_id=f"{incident.incident_id}:{incident.seq}",
            incident_id=incident.incident_id,
            seq=incident.seq,
            type=type_,
            at=item.at,
            data=data,
        )
