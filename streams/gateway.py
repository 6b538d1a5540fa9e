"""The intake gateway for hotlines and citizen apps: an Open311 GeoReport v2 compatible HTTP API (JSON format).

    GET  /services.json             the catalogue (权责清单) as Open311 service definitions
    GET  /services/{code}.json      one service definition (no extra attributes: metadata is false)
    POST /requests.json             a citizen request -> an IncidentReport on `incident.reports`
    GET  /requests/{id}.json        one request's status, from PostgreSQL
    GET  /requests.json             requests by service_code, status, date range
    (every path also without the `.json` suffix; /openapi.json is the OpenAPI document)

How it keeps the platform's promises:

- **Idempotent.** The report id is derived from the client's token (header `Idempotency-Key` or field
  `client_token`): a resend publishes the same `report_id`, which the district core recognises, and
  answers the same `service_request_id`. Without a token every POST is a new request.
- **Only admissible input is published.** What intake would dead-letter (unknown category, outside the
  served area, oversize or malformed fields) is refused here with a 400 in Open311's error format, so
  the caller learns it at once instead of finding a dead letter later.
- **Personal data stays in.** The reporter's name and phone go to the incident record (through the
  report) and are never returned, logged or labelled; nor is the free-text description returned, as it
  may carry the same.
- **Reads are views of the audit trail.** Status comes from the `incidents` table the sink maintains; a
  report merged into an earlier incident resolves to that incident.

`create_app(settings)` builds the app; `patrol gateway` serves it with uvicorn. It needs a running broker
(PATROL_KAFKA_BOOTSTRAP) and database (PATROL_DATABASE_URL); both clients start in the app's lifespan.
"""

import asyncio
import hashlib
import json
import re
import time
import uuid
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, Literal
from urllib.parse import parse_qsl

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from processors.catalogue import Catalogue, Category
from processors.geography import Geography
from processors.messages import SCHEMA_VERSION, IncidentReport, Reporter
from streams.settings import Settings
from streams.topics import INCIDENT_REPORTS

log = structlog.get_logger("patrol.gateway")

# What the district core and the sink write to `incidents.status`, as Open311's two states.
CLOSED_STATUSES = ("closed", "cancelled")
STATUS_NOTES = {
    "created": "Registered (立案); a unit is being assigned.",
    "queued": "Registered; waiting for a free unit of the responsible agency.",
    "dispatched": "A unit has been dispatched (派遣).",
    "acknowledged": "The dispatched unit has acknowledged the task.",
    "en_route": "A unit is on its way.",
    "on_scene": "A unit is on scene, dealing with it (处置).",
    "resolved": "Dealt with on scene; awaiting verification and closure (核查结案).",
    "closed": "Closed (结案).",
    "cancelled": "Cancelled.",
}
# Every id this platform issues matches the contract's Identifier pattern; anything else is unknown
# without asking the database (and cannot smuggle a NUL byte into a query).
ID_PATTERN = re.compile(r"^[A-Za-z0-9._:@/-]{1,128}$")
TOKEN_MAX = 200
DEFAULT_WINDOW = timedelta(days=90)  # Open311: a search spans at most 90 days; without dates, the last 90
PUBLISH_TIMEOUT_S = 15.0
PROBE_TIMEOUT_S = 3.0  # within the probes' own timeout (5 s)


# ----------------------------------------------------------------------------- wire models


class Open311Error(BaseModel):
    code: int = Field(description="the HTTP status code")
    description: str = Field(description="what was wrong, in words")


class ServiceDefinition(BaseModel):
    service_code: str = Field(description="the catalogue's category code; use it in POST /requests")
    service_name: str
    description: str
    metadata: bool = Field(description="always false: no extra attributes are asked for")
    type: Literal["realtime", "batch", "blackbox"]
    keywords: str = Field(description="comma-separated")
    group: str = Field(description="the domain: public_security, traffic or city_management")


class ServiceAttributes(BaseModel):
    service_code: str
    attributes: list[dict[str, Any]]


class ServiceRequestIn(BaseModel):
    """The fields of an Open311 POST (form-encoded or JSON); unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    service_code: str = Field(min_length=1, max_length=128, description="a service_code from GET /services")
    lat: float = Field(ge=-90.0, le=90.0, allow_inf_nan=False, description="WGS-84 latitude, inside the served area")
    long: float = Field(ge=-180.0, le=180.0, allow_inf_nan=False, description="WGS-84 longitude")
    address_string: str | None = Field(default=None, max_length=400, description="human-readable address")
    description: str | None = Field(default=None, max_length=4000)
    first_name: str | None = Field(default=None, max_length=190, description="kept in the incident record only")
    last_name: str | None = Field(default=None, max_length=190, description="kept in the incident record only")
    phone: str | None = Field(default=None, max_length=40, description="kept in the incident record only")
    email: str | None = Field(default=None, max_length=320, description="accepted and not kept")
    media_url: str | None = Field(default=None, max_length=2000, description="accepted and ignored")
    device_id: str | None = Field(default=None, max_length=200, description="accepted and ignored")
    account_id: str | None = Field(default=None, max_length=200, description="accepted and ignored")
    api_key: str | None = Field(default=None, max_length=200, description="accepted and ignored")
    jurisdiction_id: str | None = Field(default=None, max_length=200, description="accepted and ignored")
    client_token: str | None = Field(
        default=None, min_length=1, max_length=TOKEN_MAX,
        description="idempotency token (or header Idempotency-Key): a resend with the same token is the same request")


class ServiceRequestCreated(BaseModel):
    service_request_id: str
    service_notice: str | None = None
    account_id: None = None


class ServiceRequestOut(BaseModel):
    service_request_id: str = Field(description="the id POST answered")
    incident_id: str = Field(description="the incident this request is handled under (extension); several "
                                         "requests about one matter share one incident")
    status: Literal["open", "closed"]
    status_notes: str | None = None
    service_name: str | None = None
    service_code: str
    agency_responsible: str | None = Field(default=None, description="the catalogue's agencies, comma-separated")
    service_notice: str | None = None
    requested_datetime: datetime
    updated_datetime: datetime
    expected_datetime: datetime | None = Field(default=None, description="when it is to be closed: the "
                                               "category's resolution limit from registration")
    address: str | None = None
    address_id: str | None = None
    zipcode: str | None = None
    lat: float
    long: float
    media_url: str | None = None


ERRORS = {"model": list[Open311Error]}


# ----------------------------------------------------------------------------- pure helpers


def report_id_for(token: str | None) -> str:
    """Deterministic from the client's token, so a resend is the same report; random without one."""
    if token is None:
        return f"GW-{uuid.uuid4().hex}"
    return "GW-" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


def service_definitions(catalogue: Catalogue) -> list[ServiceDefinition]:
    return [_definition(c) for c in catalogue.categories]


def _definition(c: Category) -> ServiceDefinition:
    agencies = " + ".join(c.agencies)
    joint = " (joint dispatch)" if c.is_joint else ""
    description = f"{c.name}{f' / {c.name_zh}' if c.name_zh else ''}. Handled by {agencies}{joint}; " \
                  f"priority {c.priority}; to be resolved within {_duration(c.sla.resolve_s)}."
    keywords = [k for k in (c.name_zh, c.domain.replace("_", " "), *c.agencies) if k]
    return ServiceDefinition(service_code=c.code, service_name=c.name, description=description, metadata=False,
                             type="realtime", keywords=", ".join(keywords), group=c.domain)


def _duration(seconds: float) -> str:
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def _errors(status: int, *descriptions: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse([{"code": status, "description": d} for d in descriptions], status_code=status,
                        headers=headers)


def _validation_messages(exc: ValidationError | RequestValidationError) -> list[str]:
    messages = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
        field = ".".join(loc) or "request"
        text = err.get("msg", "invalid")
        if err.get("type") == "missing" and field in ("lat", "long"):
            text += " (requests are located by lat/long; address_string alone is not geocoded)"
        messages.append(f"{field}: {text}")
    return messages or ["invalid request"]


def _utc(value: datetime, name: str) -> datetime:
    try:
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        raise _BadRequest(f"{name}: out of range") from None


def _date_window(start: datetime | None, end: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    given_both = start is not None and end is not None
    start = _utc(start, "start_date") if start else None
    end = _utc(end, "end_date") if end else None
    try:
        if start is None and end is None:
            start, end = now - DEFAULT_WINDOW, now + timedelta(days=1)  # a day ahead: other clocks may run fast
        elif start is None:
            start = end - DEFAULT_WINDOW
        elif end is None:
            end = start + DEFAULT_WINDOW
    except OverflowError:
        raise _BadRequest("start_date/end_date: out of range") from None
    if end < start:
        raise _BadRequest("end_date: earlier than start_date")
    if given_both and end - start > DEFAULT_WINDOW:
        raise _BadRequest("start_date/end_date: a search may span at most 90 days")
    return start, end


def _comma_list(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


class _BadRequest(Exception):
    def __init__(self, *descriptions: str, status: int = 400):
        super().__init__("; ".join(descriptions))
        self.descriptions = descriptions
        self.status = status


# ----------------------------------------------------------------------------- database reads

_INCIDENT_COLUMNS = "i.incident_id, i.report_id, i.category, i.status, i.status_at, i.created_at, i.address, i.lat, i.lon"


async def _lookup(connection: asyncpg.Connection, request_id: str) -> asyncpg.Record | None:
    """The incident a request id belongs to: its own, one it was merged into, or (an incident id) itself."""
    row = await connection.fetchrow(
        f"""SELECT {_INCIDENT_COLUMNS}, i.report_id AS asked, NULL::timestamptz AS merged_at
            FROM incidents i WHERE i.report_id = $1 OR i.incident_id = $1
            ORDER BY (i.report_id = $1) DESC LIMIT 1""", request_id)
    if row is not None:
        return row
    # A later report of the same matter: the district core merged it (event data carries its report_id).
    return await connection.fetchrow(
        f"""SELECT {_INCIDENT_COLUMNS}, e.data->>'report_id' AS asked, e.at AS merged_at
            FROM incident_events e JOIN incidents i USING (incident_id)
            WHERE e.type = 'report_merged' AND e.data->>'report_id' = $1
            ORDER BY e.at LIMIT 1""", request_id)


# ----------------------------------------------------------------------------- the app


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


def create_app(settings: Settings, catalogue: Catalogue | None = None, geography: Geography | None = None) -> FastAPI:
    """The gateway for these settings; catalogue and geography default to the ones the settings name."""
    from streams.reference import load_catalogue, load_geography

    if not settings.kafka_bootstrap or not settings.database_url:
        raise ValueError("the gateway needs PATROL_KAFKA_BOOTSTRAP and PATROL_DATABASE_URL")
    catalogue = load_catalogue(settings) if catalogue is None else catalogue
    geography = load_geography(settings) if geography is None else geography
    definitions = service_definitions(catalogue)
    metrics = _Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=0,
                                    request_timeout_ms=int(PUBLISH_TIMEOUT_S * 1000),
                                    **settings.producer_options())
        try:
            await producer.start()
            pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=10, command_timeout=10)
            try:
                app.state.producer, app.state.pool = producer, pool
                log.info("gateway ready", categories=len(catalogue.categories), streets=len(geography.streets))
                yield
            finally:
                await pool.close()
        finally:
            await producer.stop()

    app = FastAPI(
        title="patrol-dispatch Open311 gateway",
        version="1.0.0",
        description=(
            "Open311 GeoReport v2 compatible intake (JSON format) of the integrated patrol brigade. "
            "POST a request with a service_code from /services.json and a location inside the served area; "
            "send an `Idempotency-Key` header (or `client_token` field) so that a resend is not a second request. "
            "Errors are Open311 error arrays: `[{\"code\": 400, \"description\": \"...\"}]`."
        ),
        lifespan=lifespan,
    )

    # ---- errors in Open311's shape

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return _errors(400, *_validation_messages(exc))

    @app.exception_handler(_BadRequest)
    async def _bad(request: Request, exc: _BadRequest):
        return _errors(exc.status, *exc.descriptions)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return _errors(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    async def _unavailable(request: Request, exc: Exception):
        log.warning("database unavailable", error=type(exc).__name__)
        return _errors(503, "the request store is unavailable; retry shortly", headers={"Retry-After": "5"})

    for kind in (OSError, asyncio.TimeoutError, asyncpg.exceptions.PostgresConnectionError,
                 asyncpg.exceptions.CannotConnectNowError, asyncpg.exceptions.TooManyConnectionsError):
        app.add_exception_handler(kind, _unavailable)

    @app.middleware("http")
    async def _measure(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        operation = getattr(route, "operation_id", None) or getattr(route, "name", None) or "unmatched"
        metrics.requests.labels(operation, str(response.status_code)).inc()
        metrics.latency.labels(operation).observe(time.perf_counter() - started)
        return response

    # ---- the OpenAPI document: our 400s replace FastAPI's 422s

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            components = schema.get("components", {}).get("schemas", {})
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi

    def route(method: str, paths: dict[str, str], endpoint, **options) -> None:
        """One endpoint under Open311's `.json` path and the bare one, each with its own operation id."""
        for path, operation_id in paths.items():
            app.add_api_route(path, endpoint, methods=[method], operation_id=operation_id, **options)

    # ---- services

    async def get_services(jurisdiction_id: str | None = Query(None, max_length=200)) -> list[ServiceDefinition]:
        """The catalogue of powers and duties (权责清单) as Open311 service definitions."""
        return definitions

    route("GET", {"/services.json": "list_services_json", "/services": "list_services"}, get_services,
          response_model=list[ServiceDefinition], responses={400: ERRORS})

    async def get_service(service_code: str = Path(..., max_length=128),
                          jurisdiction_id: str | None = Query(None, max_length=200)) -> ServiceAttributes:
        """A service definition's attributes: none (every service has metadata false)."""
        if catalogue.get(service_code) is None:
            raise _BadRequest(f"service_code {service_code!r} is not a service of this jurisdiction", status=404)
        return ServiceAttributes(service_code=service_code, attributes=[])

    route("GET", {"/services/{service_code}.json": "get_service_json", "/services/{service_code}": "get_service"},
          get_service, response_model=ServiceAttributes, responses={400: ERRORS, 404: ERRORS})

    # ---- POST a request

    # The document is made from the catalogue and geography in force: the codes one may post, and an example
    # located in the first street of the served area.
    form_schema = ServiceRequestIn.model_json_schema()
    form_schema.pop("description", None)
    form_schema["properties"]["service_code"]["enum"] = catalogue.codes
    inside = geography.streets[0].polygon.representative_point()
    example = {"service_code": catalogue.codes[0], "lat": round(inside.y, 6), "long": round(inside.x, 6),
               "address_string": "Example Street 1", "description": "What is happening, where exactly"}

    async def post_request(request: Request,
                           idempotency_key: str | None = Header(None, alias="Idempotency-Key", min_length=1,
                                                                max_length=TOKEN_MAX,
                                                                description="client token: a resend with the "
                                                                            "same key is the same request")):
        """Submit a service request. It is published to the intake stream at once and registered within seconds."""
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

    route("POST", {"/requests.json": "create_request_json", "/requests": "create_request"}, post_request,
          status_code=201, response_model=list[ServiceRequestCreated],
          responses={400: ERRORS, 413: ERRORS, 415: ERRORS, 503: ERRORS},
          openapi_extra={"requestBody": {"required": True, "content": {
              "application/x-www-form-urlencoded": {"schema": form_schema, "example": example},
              "application/json": {"schema": form_schema, "example": example}}}})

    # ---- GET requests

    def _out(row: asyncpg.Record) -> ServiceRequestOut:
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

    async def get_request(service_request_id: str = Path(..., max_length=200),
                          jurisdiction_id: str | None = Query(None, max_length=200)) -> list[ServiceRequestOut]:
        """One request's status. A request just submitted takes a few seconds to be registered."""
        row = None
        if ID_PATTERN.match(service_request_id):
            async with request_pool().acquire() as connection:
                row = await _lookup(connection, service_request_id)
        if row is None:
            raise _BadRequest(f"no service request {service_request_id!r}: unknown, or submitted moments ago and "
                              "still being registered (retry in a few seconds)", status=404)
        return [_out(row)]

    route("GET", {"/requests/{service_request_id}.json": "get_request_json",
                  "/requests/{service_request_id}": "get_request"},
          get_request, response_model=list[ServiceRequestOut], responses={400: ERRORS, 404: ERRORS})

    async def list_requests(
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
        if service_request_id is not None:
            ids = _comma_list(service_request_id)
            if len(ids) > 100:
                raise _BadRequest("service_request_id: at most 100 ids")
            found = []
            async with request_pool().acquire() as connection:
                for rid in ids:
                    row = await _lookup(connection, rid) if ID_PATTERN.match(rid) else None
                    if row is not None:
                        found.append(_out(row))
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
        async with request_pool().acquire() as connection:
            rows = await connection.fetch(
                f"""SELECT {_INCIDENT_COLUMNS}, i.report_id AS asked, NULL::timestamptz AS merged_at
                    FROM incidents i
                    WHERE ($1::text[] IS NULL OR i.category = ANY($1::text[]))
                      AND ($2::boolean IS NULL OR (i.status = ANY($3::text[])) = $2)
                      AND i.created_at >= $4 AND i.created_at <= $5
                    ORDER BY i.created_at DESC, i.incident_id LIMIT $6""",
                codes, closed, list(CLOSED_STATUSES), start, end, limit)
        return [_out(r) for r in rows]

    route("GET", {"/requests.json": "list_requests_json", "/requests": "list_requests"}, list_requests,
          response_model=list[ServiceRequestOut], responses={400: ERRORS})

    def request_pool() -> asyncpg.Pool:
        return app.state.pool

    # ---- operations (not Open311; left out of the OpenAPI document)

    @app.get("/healthz", include_in_schema=False)
    async def healthz():
        # answered by the event loop that serves the API: a stalled one cannot answer, and the probe times out
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz():
        """Ready when a request can be taken: the broker has a leader for every partition of incident.reports
        (a report can be published) and the database answers (a status can be read)."""
        answers = await asyncio.gather(_publishable(app.state.producer), _readable(request_pool()))
        reasons = [reason for reason in answers if reason]
        if reasons:
            return JSONResponse({"status": "not ready", "reasons": reasons}, status_code=503)
        return {"status": "ready"}

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


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


async def _read_fields(request: Request, max_bytes: int) -> dict[str, Any]:
    """The POSTed fields: form-encoded (Open311's format) or a JSON object; read no further than `max_bytes`."""
    media_type = (request.headers.get("content-type") or "application/x-www-form-urlencoded").split(";")[0]
    media_type = media_type.strip().lower()
    is_json = media_type == "application/json" or media_type.endswith("+json")
    if not is_json and media_type != "application/x-www-form-urlencoded":
        raise _BadRequest(f"content type {media_type!r} is not accepted: send application/x-www-form-urlencoded "
                          "or application/json", status=415)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _BadRequest(f"the request body exceeds {max_bytes} bytes", status=413)
        chunks.append(chunk)
    body = b"".join(chunks)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _BadRequest("the request body is not UTF-8") from None
    if is_json:
        try:
            doc = json.loads(text) if text.strip() else {}
        except ValueError as exc:
            raise _BadRequest(f"the request body is not valid JSON: {exc}") from None
        except RecursionError:  # thousands of nested brackets fit in the size limit
            raise _BadRequest("the request body is nested too deeply") from None
        if not isinstance(doc, dict):
            raise _BadRequest("the JSON request body must be an object of Open311 fields")
        return doc
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=100, strict_parsing=False)
    except ValueError as exc:
        raise _BadRequest(f"the form body cannot be read: {exc}") from None
    fields: dict[str, Any] = {}
    for key, value in pairs:
        fields.setdefault(key, value)  # the first of repeated fields counts
    # an empty form field is an absent one (HTML forms send every field)
    return {k: v for k, v in fields.items() if v != ""}
