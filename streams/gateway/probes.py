"""The gateway's operations endpoints (not Open311; left out of the OpenAPI document): liveness, readiness (the
broker can take a report and the database can answer a status) and the Prometheus metrics of its own registry."""

import asyncio

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from streams.gateway.models import PROBE_TIMEOUT_S
from streams.runtime.topics import INCIDENT_REPORTS


class _Metrics:
    """The gateway's own registry (a worker's metrics are not the gateway's); bounded labels only."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("patrol_gateway_requests_total", "HTTP requests by operation and status code",
                                ["operation", "code"], registry=self.registry)
        self.latency = Histogram("patrol_gateway_request_duration_seconds", "HTTP request handling time",
                                 ["operation"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.rejections = Counter("patrol_gateway_rejections_total", "POSTed requests refused, by reason",
                                  ["reason"], registry=self.registry)
        self.published = Counter("patrol_gateway_reports_published_total",
                                 "Reports published to incident.reports (resends included)", ["service_group"],
                                 registry=self.registry)


async def healthz():
    # answered by the event loop that serves the API: a stalled one cannot answer, and the probe times out
    return {"status": "ok"}


async def readyz(request: Request):
    """Ready when a request can be taken: the broker has a leader for every partition of incident.reports
    (a report can be published) and the database answers (a status can be read)."""
    answers = await asyncio.gather(_publishable(request.app.state.producer), _readable(request.app.state.pool))
    reasons = [reason for reason in answers if reason]
    if reasons:
        return JSONResponse({"status": "not ready", "reasons": reasons}, status_code=503)
    return {"status": "ready"}


async def prometheus_metrics(request: Request):
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def add_probes(app: FastAPI) -> None:
    app.add_api_route("/healthz", healthz, methods=["GET"], include_in_schema=False)
    app.add_api_route("/readyz", readyz, methods=["GET"], include_in_schema=False)
    app.add_api_route("/metrics", prometheus_metrics, methods=["GET"], include_in_schema=False)


async def _publishable(producer: AIOKafkaProducer) -> str | None:
    """Why a report cannot be published now, or None: fresh metadata from the broker must give every partition of
    incident.reports a leader (a report's partition follows its key)."""
    try:
        cluster = await asyncio.wait_for(producer.client.fetch_all_metadata(), PROBE_TIMEOUT_S)
    except (KafkaError, OSError, asyncio.TimeoutError) as exc:
        return f"kafka: no broker answers ({type(exc).__name__})"
    partitions = cluster.partitions_for_topic(INCIDENT_REPORTS) or set()
    leaderless = partitions - (cluster.available_partitions_for_topic(INCIDENT_REPORTS) or set())
    if not partitions or leaderless:
        return f"kafka: {INCIDENT_REPORTS} partitions without a leader: {sorted(leaderless) or 'all'}"
    return None


async def _readable(pool: asyncpg.Pool) -> str | None:
    """Why the database cannot answer a status request now, or None."""
    try:
        async with pool.acquire(timeout=PROBE_TIMEOUT_S) as connection:
            await connection.fetchval("SELECT 1", timeout=PROBE_TIMEOUT_S)
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"postgresql: {type(exc).__name__}"
    return None
