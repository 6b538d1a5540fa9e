"""The Open311 routes: module-level handlers for the services catalogue, POSTing a request, and reading requests
back, registered by `add_routes` under each `.json` path and the bare one. What a handler needs (settings, catalogue,
geography, metrics, the Kafka producer and the database pool) it finds on `request.app.state`."""

import asyncio
from datetime import datetime, timezone

import asyncpg
import structlog
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from processors.catalogue import Catalogue
from processors.geography import Geography
from processors.messages import SCHEMA_VERSION, IncidentReport, Reporter
from streams.gateway.formats import (
    _BadRequest,
    _comma_list,
    _date_window,
    _duration,
    _read_fields,
    _validation_messages,
    report_id_for,
)
from streams.gateway.models import (
    CLOSED_STATUSES,
    ERRORS,
    ID_PATTERN,
    PUBLISH_TIMEOUT_S,
    STATUS_NOTES,
    TOKEN_MAX,
    ServiceAttributes,
    ServiceDefinition,
    ServiceRequestCreated,
    ServiceRequestIn,
    ServiceRequestOut,
)
from streams.gateway.store import _INCIDENT_COLUMNS, _lookup
from streams.runtime.topics import INCIDENT_REPORTS

log = structlog.get_logger("patrol.gateway")


def route(app: FastAPI, method: str, paths: dict[str, str], endpoint, **options) -> None:
    """One endpoint under Open311's `.json` path and the bare one, each with its own operation id."""
    for path, operation_id in paths.items():
        app.add_api_route(path, endpoint, methods=[method], operation_id=operation_id, **options)


# ----------------------------------------------------------------------------- services


async def get_services(request: Request,
                       jurisdiction_id: str | None = Query(None, max_length=200)) -> list[ServiceDefinition]:
    """The catalogue of powers and duties (权责清单) as Open311 service definitions."""
    return request.app.state.definitions


async def get_service(request: Request, service_code: str = Path(..., max_length=128),
                      jurisdiction_id: str | None = Query(None, max_length=200)) -> ServiceAttributes:
    """A service definition's attributes: none (every service has metadata false)."""
    if request.app.state.catalogue.get(service_code) is None:
        raise _BadRequest(f"service_code {service_code!r} is not a service of this jurisdiction", status=404)
    return ServiceAttributes(service_code=service_code, attributes=[])


# ----------------------------------------------------------------------------- POST a request


def request_body_doc(catalogue: Catalogue, geography: Geography) -> dict:
    """The POST's request body in the OpenAPI document, made from the catalogue and geography in force: the codes
    one may post, and an example located in the first street of the served area."""
    form_schema = ServiceRequestIn.model_json_schema()
    form_schema.pop("description", None)
    form_schema["properties"]["service_code"]["enum"] = catalogue.codes
    inside = geography.streets[0].polygon.representative_point()
    example = {"service_code": catalogue.codes[0], "lat": round(inside.y, 6), "long": round(inside.x, 6),
               "address_string": "Example Street 1", "description": "What is happening, where exactly"}
    return {"requestBody": {"required": True, "content": {
        "application/x-www-form-urlencoded": {"schema": form_schema, "example": example},
        "application/json": {"schema": form_schema, "example": example}}}}


async def post_request(request: Request,
                       idempotency_key: str | None = Header(None, alias="Idempotency-Key", min_length=1,
                                                            max_length=TOKEN_MAX,
                                                            description="client token: a resend with the "
                                                                        "same key is the same request")):
    """Submit a service request. It is published to the intake stream at once and registered within seconds."""
    state = request.app.state
    settings, catalogue, geography, metrics = state.settings, state.catalogue, state.geography, state.metrics
    fields = await _read_fields(request, settings.max_report_bytes)
    try:
        given = ServiceRequestIn.model_validate(fields)
    except ValidationError as exc:
        metrics.rejections.labels("invalid_field").inc()
        raise _BadRequest(*_validation_messages(exc)) from None
    if idempotency_key is not None and given.client_token is not None and idempotency_key != given.client_token:
        metrics.rejections.labels("invalid_field").inc()
        raise _BadRequest("Idempotency-Key and client_token differ: send one token")
    category = catalogue.get(given.service_code)
    if category is None:
        metrics.rejections.labels("unknown_service").inc()
        raise _BadRequest(f"service_code {given.service_code!r} is unknown: see GET /services.json")
    street = geography.locate(given.lat, given.long)
    if street is None:
        metrics.rejections.labels("outside_area").inc()
        raise _BadRequest(f"lat/long ({given.lat}, {given.long}) lies outside the served area "
                          f"(districts {', '.join(geography.districts)})")
    name = " ".join(p for p in (given.first_name, given.last_name) if p) or None
    reporter = Reporter(name=name, phone=given.phone or None) if (name or given.phone) else None
    report_id = report_id_for(idempotency_key or given.client_token)
    try:
        report = IncidentReport(
            schema_version=SCHEMA_VERSION, report_id=report_id, source="app", category=category.code,
            lat=given.lat, lon=given.long, reported_at=datetime.now(timezone.utc),
            description=given.description or None, address=given.address_string or None,
            reporter=reporter, attributes={"intake": "open311"})
    except ValidationError as exc:  # the input model mirrors the contract's limits; this is a backstop
        metrics.rejections.labels("invalid_field").inc()
        raise _BadRequest(*_validation_messages(exc)) from None
    try:
        await asyncio.wait_for(
            request.app.state.producer.send_and_wait(INCIDENT_REPORTS, report.to_json_bytes(),
                                                     key=report_id.encode()), PUBLISH_TIMEOUT_S)
    except (KafkaError, asyncio.TimeoutError) as exc:
        log.warning("publish failed", report_id=report_id, error=type(exc).__name__)
        raise _BadRequest("the intake stream is unavailable; resend with the same Idempotency-Key",
                          status=503) from None
    metrics.published.labels(category.domain).inc()
    log.info("request accepted", report_id=report_id, category=category.code, street=street.street,
             resend_safe=bool(idempotency_key or given.client_token))
    notice = (f"Registered with the integrated patrol brigade ({' + '.join(category.agencies)}); "
              f"to be resolved within {_duration(category.sla.resolve_s)}.")
    body = [ServiceRequestCreated(service_request_id=report_id, service_notice=notice).model_dump()]
    return JSONResponse(body, status_code=201)


# ----------------------------------------------------------------------------- GET requests


def _out(row: asyncpg.Record, catalogue: Catalogue) -> ServiceRequestOut:
    category = catalogue.get(row["category"])
    expected = (catalogue.deadline(category, row["created_at"], category.sla.resolve_s)
                if category is not None else None)
    notes = STATUS_NOTES.get(row["status"], row["status"])
    if row["merged_at"] is not None:
        notes = f"Reported before as request {row['report_id']}; handled together with it. {notes}"
    return ServiceRequestOut(
        service_request_id=row["asked"], incident_id=row["incident_id"],
        status="closed" if row["status"] in CLOSED_STATUSES else "open", status_notes=notes,
        service_name=category.name if category else None, service_code=row["category"],
        agency_responsible=", ".join(category.agencies) if category else None,
        requested_datetime=row["merged_at"] or row["created_at"], updated_datetime=row["status_at"],
        expected_datetime=expected, address=row["address"], lat=row["lat"], long=row["lon"])


async def get_request(request: Request, service_request_id: str = Path(..., max_length=200),
                      jurisdiction_id: str | None = Query(None, max_length=200)) -> list[ServiceRequestOut]:
    """One request's status. A request just submitted takes a few seconds to be registered."""
    row = None
    if ID_PATTERN.match(service_request_id):
        async with request.app.state.pool.acquire() as connection:
            row = await _lookup(connection, service_request_id)
    if row is None:
        raise _BadRequest(f"no service request {service_request_id!r}: unknown, or submitted moments ago and "
                          "still being registered (retry in a few seconds)", status=404)
    return [_out(row, request.app.state.catalogue)]


async def list_requests(
    request: Request,
    service_request_id: str | None = Query(None, max_length=4000, description="comma-separated ids; "
                                           "when given, the other filters are ignored (Open311)"),
    service_code: str | None = Query(None, max_length=4000, description="comma-separated service codes"),
    status: str | None = Query(None, max_length=20, description="open, closed or open,closed"),
    start_date: datetime | None = Query(None, description="earliest requested_datetime (ISO 8601)"),
    end_date: datetime | None = Query(None, description="latest requested_datetime (ISO 8601); "
                                      "a search spans at most 90 days, by default the last 90"),
    limit: int = Query(100, ge=1, le=1000),
    jurisdiction_id: str | None = Query(None, max_length=200),
) -> list[ServiceRequestOut]:
    """Requests by service code, status and date range, newest first."""
    catalogue = request.app.state.catalogue
    if service_request_id is not None:
        ids = _comma_list(service_request_id)
        if len(ids) > 100:
            raise _BadRequest("service_request_id: at most 100 ids")
        found = []
        async with request.app.state.pool.acquire() as connection:
            for rid in ids:
                row = await _lookup(connection, rid) if ID_PATTERN.match(rid) else None
                if row is not None:
                    found.append(_out(row, catalogue))
        return found[:limit]
    statuses = set(_comma_list(status)) if status is not None else {"open", "closed"}
    if not statuses or not statuses <= {"open", "closed"}:
        raise _BadRequest(f"status: {status!r} is not open, closed or open,closed")
    codes = _comma_list(service_code) if service_code is not None else None
    if codes is not None:
        codes = [c for c in codes if catalogue.get(c) is not None]  # unknown codes match nothing
        if not codes:
            return []
    start, end = _date_window(start_date, end_date, datetime.now(timezone.utc))
    closed = None if statuses == {"open", "closed"} else statuses == {"closed"}
    async with request.app.state.pool.acquire() as connection:
        rows = await connection.fetch(
            f"""SELECT {_INCIDENT_COLUMNS}, i.report_id AS asked, NULL::timestamptz AS merged_at
                FROM incidents i
                WHERE ($1::text[] IS NULL OR i.category = ANY($1::text[]))
                  AND ($2::boolean IS NULL OR (i.status = ANY($3::text[])) = $2)
                  AND i.created_at >= $4 AND i.created_at <= $5
                ORDER BY i.created_at DESC, i.incident_id LIMIT $6""",
            codes, closed, sorted(CLOSED_STATUSES), start, end, limit)
    return [_out(r, catalogue) for r in rows]


def add_routes(app: FastAPI, catalogue: Catalogue, geography: Geography) -> None:
    """The Open311 endpoints, in the order of the OpenAPI document."""
    route(app, "GET", {"/services.json": "list_services_json", "/services": "list_services"}, get_services,
          response_model=list[ServiceDefinition], responses={400: ERRORS})
    route(app, "GET", {"/services/{service_code}.json": "get_service_json", "/services/{service_code}": "get_service"},
          get_service, response_model=ServiceAttributes, responses={400: ERRORS, 404: ERRORS})
    route(app, "POST", {"/requests.json": "create_request_json", "/requests": "create_request"}, post_request,
          status_code=201, response_model=list[ServiceRequestCreated],
          responses={400: ERRORS, 413: ERRORS, 415: ERRORS, 503: ERRORS},
          openapi_extra=request_body_doc(catalogue, geography))
    route(app, "GET", {"/requests/{service_request_id}.json": "get_request_json",
                       "/requests/{service_request_id}": "get_request"},
          get_request, response_model=list[ServiceRequestOut], responses={400: ERRORS, 404: ERRORS})
    route(app, "GET", {"/requests.json": "list_requests_json", "/requests": "list_requests"}, list_requests,
          response_model=list[ServiceRequestOut], responses={400: ERRORS})
