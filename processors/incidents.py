"""Incidents as the district core holds them: what was reported, who is on it, which limits run, and the
events that tell its story.

Ids are derived, never counted: an incident's from its first report, an order's from its incident and its
number, so that replaying a district's log gives every id again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from processors.catalogue import Category
from processors.messages import IncidentEvent, Message
from processors.units import Assignment

# How long a closed incident is kept in memory: for the day's late field events to be told apart from
# mistakes. After that the core forgets it (and its orders), so that its memory holds a day, not its whole
# history; its report ids are kept longer (RESENDS_KEPT), so that a report resent later never opens it again.
CLOSED_KEPT = timedelta(hours=24)


def seconds(span) -> float:
    return round(span.total_seconds(), 3)


def order_id(incident: "Incident", n: int) -> str:
    """The id of an incident's n-th order (from 1)."""
    return f"{incident.incident_id}-O{n}"


def incident_id_for(district: str, report_id: str) -> str:
    """Derived from the first report, not from a counter: report ids are unique for good, while a
    counter restarts with a new log and would reuse ids already in the audit trail."""
    digest = hashlib.sha256(report_id.encode()).hexdigest()[:12].upper()
    return f"INC-{district}-{digest}"


# The status each incident event leaves its incident in: the status its record shows (the sink), Open311's
# open/closed (the gateway) and whether the core still works on it all read it from here. An event of another
# type (a merge, an escalation) leaves the status as it was.
STATUS_AFTER = {
    "created": "created",
    "dispatched": "dispatched",
    "reassigned": "dispatched",
    "queued": "queued",
    "acknowledged": "acknowledged",
    "en_route": "en_route",
    "on_scene": "on_scene",
    "resolved": "resolved",
    # the last unit resolved it: the complainant's verification is awaited (processors/verification.py)
    "awaiting_verification": "awaiting_verification",
    "reopened": "reopened",
    "closed": "closed",
    "cancelled": "cancelled",
}
CLOSED_STATUSES = frozenset({"closed", "cancelled"})


def district_of(incident_id: str) -> str | None:
    """The district an incident id was made in (`incident_id_for`), or None if it is not such an id."""
    if not incident_id.startswith("INC-") or len(incident_id) < 18 or incident_id[-13] != "-":
        return None
    return incident_id[4:-13]


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
    # a unit was pulled off it for a priority-1 incident: it waits at the head of its priority's queue
    bumped: bool = False
    # (level, reason) pairs already escalated: each is raised once per incident
    raised: set[tuple[int, str]] = field(default_factory=set)
    # when its last unit resolved it (it then awaits verification: processors/verification.py)
    resolved_at: datetime | None = None
    # the escalation ids a dispatcher has acknowledged, in that order
    acknowledged: list[str] = field(default_factory=list)
    # the ids of the dispatcher commands decided for it: a resent command changes nothing
    commands: list[str] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status not in CLOSED_STATUSES

    def missing(self) -> list[str]:
        return [a for a in self.category.agencies if a not in self.active and a not in self.resolved]

    def role_of(self, agency: str) -> str:
        return "lead" if agency == self.category.agencies[0] else "support"


def record_event(incident: Incident, type_: str, at: datetime, out: list[Message], data: dict) -> None:
    """Append the incident's next event to `out`, and give the incident the status that event leaves it in."""
    incident.seq += 1
    incident.status = STATUS_AFTER.get(type_, incident.status)
    out.append(IncidentEvent(
        schema_version=1, event_id=f"{incident.incident_id}:{incident.seq}", incident_id=incident.incident_id,
        seq=incident.seq, type=type_, at=at, data=data,
    ))


def timing(incident: Incident, at: datetime) -> dict:
    """The figures every SLA event carries: what the incident is and how long it has been open."""
    return {"category": incident.category.code, "domain": incident.category.domain,
            "priority": incident.priority, "since_created_s": seconds(at - incident.created_at)}
