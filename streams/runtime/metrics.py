"""Prometheus metrics of a worker: `patrol_` prefix, base units, bounded labels only (never an id).

Counters and histograms follow the messages a worker publishes (`observe`);
gauges describe only the district-log partitions this worker owns
(`describe_districts`), so that sums across workers are right. streams/runtime/health.py
serves them, beside the liveness and readiness probes, from the worker's event loop.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Collection
from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram

from processors.catalogue import Catalogue
from processors.coverage import circle_categories, covered, street_points
from processors.geography import Geography
from processors.messages import DispatchOrder, Escalation, IncidentEvent, Message, WorkItem

# Response times reach from seconds (an acknowledgement) to days (illegal construction).
RESPONSE_BUCKETS = (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400, 259200, 864000)

REPORTS = Counter(
    "patrol_reports_total", "Inbound incident reports by source and intake outcome", ["source", "outcome"]
)
UNIT_EVENTS = Counter("patrol_unit_events_total", "Inbound unit events by type and intake outcome", ["type", "outcome"])
REGISTER_CHANGES = Counter("patrol_register_changes_total", "Unit register changes read, by action (set, remove) "
                           "or invalid", ["outcome"])
DEAD_LETTERS = Counter("patrol_dead_letters_total", "Messages dead-lettered, by stage and reason", ["stage", "reason"])
INCIDENT_EVENTS = Counter(
    "patrol_incident_events_total", "Incident events emitted by the district core", ["type", "district"]
)
DISPATCH_ORDERS = Counter(
    "patrol_dispatch_orders_total", "Dispatch orders issued to field units", ["kind", "agency", "role"]
)
REASSIGNMENTS = Counter(
    "patrol_reassignments_total", "Tasks handed from one unit to another, by why", ["reason"]
)
SLA_BREACHES = Counter(
    "patrol_sla_breaches_total",
    "SLA limits missed and escalated, by stage (acknowledge, arrive, resolve, assign), domain and ladder level",
    ["stage", "domain", "level"],
)
SLA_OUTCOMES = Counter(
    "patrol_sla_outcomes_total",
    "Time limits that ran their course, met or missed (compliance = met / all)",
    ["stage", "domain", "outcome"],
)
DECISION_SECONDS = Histogram(
    "patrol_dispatch_decision_seconds",
    "From a report's arrival at intake to its dispatch order being published",
    ["priority"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INTAKE_WAIT_SECONDS = Histogram(
    "patrol_intake_wait_seconds",
    "From a report's publication (its record's timestamp, by the publisher's clock) to intake taking it: the "
    "broker's hop and the time it waited behind other records",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RESPONSE_SECONDS = Histogram(
    "patrol_response_seconds",
    "Acknowledge (order to ack), arrive (first dispatch to on scene) and resolve (created to closed) times",
    ["stage", "domain"],
    buckets=RESPONSE_BUCKETS,
)
OPEN_INCIDENTS = Gauge(
    "patrol_open_incidents", "Open incidents in the districts this worker owns",
    ["district", "street", "domain", "priority"],
)
QUEUED_INCIDENTS = Gauge(
    "patrol_queued_incidents", "Incidents waiting for a unit no one could send yet", ["district", "domain"]
)
UNITS = Gauge(
    "patrol_units", "Logged-on units by status (free, busy, unavailable)", ["district", "street", "agency", "status"]
)
STREET_WORKLOAD = Gauge(
    "patrol_street_workload", "Open incidents per free unit of the street, plus one: the pressure balancing evens out",
    ["district", "street"],
)
STREET_CIRCLE = Gauge(
    "patrol_street_circle_covered",
    "1 while the street's whole area is within 15 minutes of a free unit of the agency that may take its "
    "priority-1 work (the 15-minute circle), else 0",
    ["district", "street", "agency"],
)
CONSUMER_LAG = Gauge(
    "patrol_consumer_lag", "Messages not yet consumed, per owned topic partition", ["group", "topic", "partition"]
)
SINK_ROWS = Counter("patrol_sink_rows_total", "Rows written to PostgreSQL by the sink", ["table"])
SINK_BATCH_SECONDS = Histogram(
    "patrol_sink_batch_seconds",
    "Time to write one sink batch to PostgreSQL",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SINK_RETRIES = Counter("patrol_sink_retries_total", "Sink batches retried after a database error")
SINK_WRITE_FAILING = Gauge(
    "patrol_sink_write_failing_seconds",
    "How long the sink's current batch has been failing to write to PostgreSQL; 0 while writes succeed")
LOOP_RESTARTS = Counter(
    "patrol_loop_restarts_total", "Times a loop (district-pipeline, sink) failed and was started again", ["loop"])
LOOP_PROGRESS = Gauge(
    "patrol_loop_progress_timestamp_seconds",
    "Unix time of a loop's last progress (a batch handled, or a poll that found nothing to do): its heartbeat",
    ["loop"])
WORKER_READY = Gauge("patrol_worker_ready", "1 while this process (worker or sink) answers /readyz with 200, else 0")
SNAPSHOT_SECONDS = Histogram(
    "patrol_snapshot_seconds",
    "Taking a district work-log partition's snapshot: capture (between two entries, while the pipeline waits) "
    "and store (writing it to the snapshot topic)",
    ["stage"], buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SNAPSHOT_BYTES = Histogram(
    "patrol_snapshot_bytes", "Size of a stored district snapshot (compressed)",
    buckets=(1e3, 1e4, 1e5, 3e5, 1e6, 3e6, 1e7, 3e7, 1e8),
)
RECOVERY_SECONDS = Histogram(
    "patrol_recovery_seconds",
    "Recovering a work-log partition taken over: its newest snapshot read and restored, the entries after it replayed",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
RECOVERY_ENTRIES = Counter("patrol_recovery_entries_total", "Work-log entries replayed by recoveries")
RECOVERY_GAPS = Counter(
    "patrol_recovery_gaps_total",
    "Recoveries that found work-log entries after the newest snapshot already removed by retention",
)
WORKER_INFO = Gauge("patrol_worker_info", "Always 1; labels say which app and version this worker runs",
                    ["app_id", "version"])

# the stage of the task whose limit an escalation reason says was missed
BREACH_STAGE = {
    "ack_overdue": "acknowledge",
    "arrival_overdue": "arrive",
    "resolve_overdue": "resolve",
    "no_eligible_unit": "assign",
    # the promise to the citizen counted from the report: a breach of its own, with no "met" counted for it
    "promise_overdue": "promise",
}
# the stages whose escalations are breaches only: no outcome (met or missed) is counted for them
BREACH_ONLY = frozenset({"assign", "promise"})


def observe(message: Message, item: WorkItem, now: datetime, domain_of) -> None:
    """Count what the district core just decided on `item` (which entered intake at `item.at`)."""
    received_at = item.at if item.kind == "report" else None
    if isinstance(message, DispatchOrder):
        DISPATCH_ORDERS.labels(message.kind, message.agency, message.role).inc()
        if message.kind == "assign" and received_at is not None:
            DECISION_SECONDS.labels(str(message.priority)).observe(max(0.0, (now - received_at).total_seconds()))
    elif isinstance(message, Escalation):
        stage = BREACH_STAGE[message.reason]
        domain = domain_of(message.category)
        SLA_BREACHES.labels(stage, domain, str(message.level)).inc()
        if stage not in BREACH_ONLY:
            SLA_OUTCOMES.labels(stage, domain, "missed").inc()
    elif isinstance(message, IncidentEvent):
        data = message.data
        INCIDENT_EVENTS.labels(message.type, item.district).inc()
        if message.type == "reassigned":
            REASSIGNMENTS.labels(data.get("reason", "unknown")).inc()
        elif message.type == "queued" and data.get("reason") == "preempted":
            REASSIGNMENTS.labels("preempted").inc()
        domain = data.get("domain", "unknown")
        # a limit already escalated as missed is counted then; only the ones met are counted here
        for stage, seconds, on_time in (("acknowledge", "since_order_s", "ack_on_time"),
                                        ("arrive", "since_dispatch_s", "arrive_on_time"),
                                        # the units' work done (awaiting_verification), not its closing
                                        ("resolve", "resolved_s", "resolve_on_time")):
            if seconds in data:
                RESPONSE_SECONDS.labels(stage, domain).observe(data[seconds])
                if data.get(on_time):
                    SLA_OUTCOMES.labels(stage, domain, "met").inc()


def observe_intake_wait(published_ms: int, now: datetime) -> None:
    """A report taken by intake at `now` that its publisher stamped `published_ms` (Kafka's record timestamp)."""
    if published_ms > 0:  # older clients send none (-1)
        INTAKE_WAIT_SECONDS.observe(max(0.0, now.timestamp() - published_ms / 1000))


UNKNOWN = "unknown"


def bounded(value: str, known: Collection[str] | None) -> str:
    """A label value from a closed set: `value` if it is `known` (a street of the geography, an agency of the
    catalogue), else "unknown", so that invented values in messages cannot multiply the series. None: any."""
    return value if known is None or value in known else UNKNOWN


class ServiceCircle:
    """What the 15-minute circle gauge is judged against, fixed for the process: each district's street points
    (processors.coverage.street_points, worked out once, the first time the district is described) and, per agency,
    the priority-1 category whose place its units are judged able to take (circle_categories)."""

    def __init__(self, geography: Geography, catalogue: Catalogue):
        self.geography = geography
        self.categories = circle_categories(catalogue)
        self._points: dict[str, dict[str, list[tuple[float, float]]]] = {}

    def points(self, district: str) -> dict[str, list[tuple[float, float]]]:
        if district not in self._points:
            self._points[district] = street_points(self.geography, district)
        return self._points[district]

    def covered(self, state) -> dict[tuple[str, str], bool]:
        """(street, agency) -> whether the street is inside the agency's circle now, for `state`'s district."""
        points = self.points(state.district)
        return {(street, agency): ok for agency, category in sorted(self.categories.items())
                for street, ok in covered(state, points, category, agency).items()}


def describe_districts(cores, streets: Collection[str] | None = None, agencies: Collection[str] | None = None,
                       circle: ServiceCircle | None = None) -> None:
    """Set the gauges from the district cores this worker owns (an iterable of DistrictCore). A unit's home street
    and agency become labels only if they are among `streets` and `agencies` (the worker passes the geography's
    and the catalogue's), else "unknown". The 15-minute circle gauge is set only where `circle` is given."""
    open_, queued, units, workload, inside = Tally(), Tally(), Tally(), {}, {}
    for core in cores:
        state = core.state
        district = state.district
        # the open ones only, through their index: a day's closed incidents are many times more
        for incident_id in state.open_incidents:
            incident = state.incidents[incident_id]
            open_[(district, incident.street, incident.category.domain, str(incident.priority))] += 1
        for incident_id in state.queue:
            queued[(district, state.incidents[incident_id].category.domain)] += 1
        for unit in state.units.values():
            if unit.on_duty:
                status = "free" if unit.free else ("busy" if unit.order_id else "unavailable")
                units[(district, bounded(unit.home_street, streets), bounded(unit.agency, agencies), status)] += 1
        for street in set(state.load.open_incidents) | set(state.load.free_units):
            key = (district, bounded(street, streets))
            workload[key] = max(state.load.pressure(street), workload.get(key, 0.0))
        if circle is not None:
            for (street, agency), ok in circle.covered(state).items():
                key = (district, bounded(street, streets), bounded(agency, agencies))
                # an "unknown" catch-all is covered only if everything under it is
                inside[key] = min(float(ok), inside.get(key, 1.0))
    for gauge, values in ((OPEN_INCIDENTS, open_), (QUEUED_INCIDENTS, queued), (UNITS, units),
                          (STREET_WORKLOAD, workload), (STREET_CIRCLE, inside)):
        # Set in place, then only the label sets that disappeared (a street whose last incident closed) removed,
        # so that they do not linger at their old value. Not clear() and set again: the exposition is served by
        # a thread of its own, and a scrape between the two would find every series of the gauge missing.
        for labels, value in values.items():
            gauge.labels(*labels).set(value)
        for labels in _described.get(gauge, set()) - values.keys():
            gauge.remove(*labels)
        _described[gauge] = set(values)


# the label sets each district gauge was given by the last describe_districts
_described: dict[Gauge, set[tuple[str, ...]]] = {}


async def measure_lag(group: str, consumer) -> int:
    """Lag of each partition `consumer` (an aiokafka consumer) owns; their sum."""
    total = 0
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        position = await consumer.position(tp)
        if highwater is not None and position is not None:
            lag = max(0, highwater - position)
            CONSUMER_LAG.labels(group, tp.topic, str(tp.partition)).set(lag)
            total += lag
    return total
