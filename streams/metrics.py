"""Prometheus metrics of a worker: `patrol_` prefix, base units, bounded labels only (never an id)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

REPORTS = Counter(
    "patrol_reports_total", "Inbound incident reports by source and intake outcome", ["source", "outcome"]
)
UNIT_EVENTS = Counter("patrol_unit_events_total", "Inbound unit events by type and intake outcome", ["type", "outcome"])
DEAD_LETTERS = Counter("patrol_dead_letters_total", "Messages dead-lettered, by stage and reason", ["stage", "reason"])
INCIDENT_EVENTS = Counter(
    "patrol_incident_events_total", "Incident events emitted by the district core", ["type", "district"]
)
SLA_BREACHES = Counter(
    "patrol_sla_breaches_total",
    "SLA limits missed and escalated, by stage (acknowledge, arrive, resolve, assign), domain and ladder level",
    ["stage", "domain", "level"],
)
SINK_ROWS = Counter("patrol_sink_rows_total", "Rows written to PostgreSQL by the sink", ["table"])
SINK_BATCH_SECONDS = Histogram(
    "patrol_sink_batch_seconds",
    "Time to write one sink batch to PostgreSQL",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SINK_RETRIES = Counter("patrol_sink_retries_total", "Sink batches retried after a database error")


def serve_metrics(port: int) -> None:
    if port:
        start_http_server(port, addr="0.0.0.0")
