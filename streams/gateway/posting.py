"""POST /requests: a client system's request, checked in the order a caller can act on — its key (403), its rate
(429), its fields (400), the location, intake's own admission (400: the one function the pipeline admits by), what
its role may post (403), its idempotency key (409) — then published to `incident.reports`."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import structlog
from aiokafka.errors import KafkaError
from fastapi import Header, Query, Request
from pydantic import ValidationError

from processors.catalogue import Catalogue
from processors.dead_letters import Rejected
from processors.geography import Geography
from processors.intake import Inbound, Limits, admit_report
from processors.messages import SCHEMA_VERSION, IncidentReport, Reporter
from streams.gateway.addresses import street_for_address, street_point
from streams.gateway.formats import (
    _BadRequest,
    _duration,
    _read_fields,
    _validation_messages,
    fingerprint,
    report_id_for,
)
from streams.gateway.keys import SOURCES, Client, client_for, may_post
from streams.gateway.models import PUBLISH_TIMEOUT_S, TOKEN_MAX, ServiceRequestCreated, ServiceRequestIn
from streams.gateway.renderers import render
from streams.gateway.store import record_post
from streams.runtime.topics import INCIDENT_REPORTS

log = structlog.get_logger("patrol.gateway")

# intake's reasons, as a caller is told them
_ADMISSION = {
    "unknown_category": "service_code {code!r} is unknown: see GET /services.json",
    "outside_area": "lat/long ({lat}, {lon}) lies outside the served area (districts {districts})",
}


async def authenticated(request: Request, key: str | None) -> Client:
    """The client a key in force belongs to, or a 403 (GeoReport v2's answer to a missing or bad api_key)."""
    async with request.app.state.pool.acquire() as connection:
        client = await client_for(connection, key)
    if client is None:
        request.app.state.metrics.rejections.labels("bad_api_key").inc()
        raise _BadRequest("api_key is missing, unknown or revoked: a client system posts with the key it was issued",
                          status=403)
    request.app.state.throttle.key(client.client)
    return client


def located(given: ServiceRequestIn, geography: Geography) -> tuple[float, float]:
    if given.lat is not None and given.long is not None:
        return given.lat, given.long
    street = street_for_address(geography, given.address_string, given.address_id)
    if street is None:
        named = f"address_id {given.address_id!r}" if given.address_id else f"address_string {given.address_string!r}"
        raise _BadRequest(f"{named} names no street of the register (e.g. "
                          f"{', '.join(s.name for s in geography.streets[:3])}): give lat/long")
    return street_point(street)


def admitted(report: IncidentReport, now: datetime, request: Request) -> None:
    """Intake's admission of the very bytes that will be published: what it would dead-letter is a 400 here."""
    state = request.app.state
    settings = state.settings
    limits = Limits(max_bytes=settings.max_report_bytes, future_skew=timedelta(seconds=settings.future_skew_s))
    record = Inbound(topic=INCIDENT_REPORTS, partition=-1, offset=-1, key=report.report_id.encode(),
                     value=report.to_json_bytes(), received_at=now)
    verdict = admit_report(record, state.catalogue, state.geography, limits)
    if isinstance(verdict, Rejected):
        state.metrics.rejections.labels(verdict.reason).inc()
        text = _ADMISSION.get(verdict.reason, "{reason}: {error}").format(
            code=report.category, lat=report.lat, lon=report.lon, districts=", ".join(state.geography.districts),
            reason=verdict.reason, error=verdict.error)
        raise _BadRequest(text)


async def post_request(request: Request,
                       idempotency_key: str | None = Header(None, alias="Idempotency-Key", min_length=1,
                                                            max_length=TOKEN_MAX,
                                                            description="client token: a resend with the same key "
                                                                        "and body is the same request"),
                       api_key: str | None = Query(None, max_length=200, description="the client's API key (or "
                                                   "the api_key field)")):
    """Submit a service request with the client system's api_key. It is published to the intake stream at once and
    registered within seconds."""
    state = request.app.state
    settings, catalogue, geography, metrics = state.settings, state.catalogue, state.geography, state.metrics
    fields = await _read_fields(request, settings.max_report_bytes)
    key = fields.get("api_key") if isinstance(fields.get("api_key"), str) else api_key
    client = await authenticated(request, key)
    try:
        given = ServiceRequestIn.model_validate(fields)
    except ValidationError as exc:
        metrics.rejections.labels("invalid_field").inc()
        raise _BadRequest(*_validation_messages(exc)) from None
    if idempotency_key is not None and given.client_token is not None and idempotency_key != given.client_token:
        metrics.rejections.labels("invalid_field").inc()
        raise _BadRequest("Idempotency-Key and client_token differ: send one token")
    token = idempotency_key or given.client_token
    lat, lon = located(given, geography)
    report = _report(given, client, report_id_for(client.client, token), lat, lon, datetime.now(timezone.utc))
    admitted(report, report.reported_at, request)
    category = catalogue.get(report.category)
    refusal = may_post(client.role, category)
    if refusal is not None:
        metrics.rejections.labels("role").inc()
        raise _BadRequest(refusal, status=403)
    async with state.pool.acquire() as connection:
        outcome = await record_post(connection, report_id=report.report_id, client=client.client,
                                    idempotency_key=token, fingerprint=fingerprint(given.model_dump()),
                                    lat=report.lat, lon=report.lon, address=given.address_string,
                                    media_url=given.media_url)
    if outcome == "conflict":
        metrics.rejections.labels("idempotency_conflict").inc()
        raise _BadRequest(f"the idempotency key was used for a different request (service_request_id "
                          f"{report.report_id}): a resend must repeat the first body; a new request needs a new key",
                          status=409)
    await _publish(request, report)
    metrics.published.labels(category.domain).inc()
    log.info("request accepted", report_id=report.report_id, category=category.code, client=client.client,
             resend=outcome == "resend")
    return render(request, "service_requests", [_created(report, catalogue)], status_code=201)


def _report(given: ServiceRequestIn, client: Client, report_id: str, lat: float, lon: float,
            now: datetime) -> IncidentReport:
    name = " ".join(p for p in (given.first_name, given.last_name) if p) or None
    reporter = Reporter(name=name, phone=given.phone or None) if (name or given.phone) else None
    try:
        return IncidentReport(
            schema_version=SCHEMA_VERSION, report_id=report_id, source=SOURCES[client.role],
            category=given.service_code, lat=lat, lon=lon, reported_at=now,
            description=given.description or None, address=given.address_string or None,
            reporter=reporter, attributes={"intake": "open311", "client": client.client,
                                           "located": "point" if given.lat is not None else "street"})
    except ValidationError as exc:  # the input model mirrors the contract's limits; this is a backstop
        raise _BadRequest(*_validation_messages(exc)) from None


async def _publish(request: Request, report: IncidentReport) -> None:
    """Publish, or a 503: the key stays bound to this body, so the resend the answer asks for is a resend."""
    try:
        await asyncio.wait_for(
            request.app.state.producer.send_and_wait(INCIDENT_REPORTS, report.to_json_bytes(),
                                                     key=report.report_id.encode()), PUBLISH_TIMEOUT_S)
    except (KafkaError, asyncio.TimeoutError) as exc:
        log.warning("publish failed", report_id=report.report_id, error=type(exc).__name__)
        raise _BadRequest("the intake stream is unavailable; resend with the same Idempotency-Key",
                          status=503) from None


def _created(report: IncidentReport, catalogue: Catalogue) -> ServiceRequestCreated:
    category = catalogue.get(report.category)
    notice = (f"Registered with the integrated patrol brigade ({' + '.join(category.agencies)}); "
              f"to be resolved within {_duration(category.sla.resolve_s)}.")
    return ServiceRequestCreated(service_request_id=report.report_id, token=report.report_id, service_notice=notice)
