"""The gateway's assembly: `create_app` builds the FastAPI app — its lifespan (the Kafka producer and the PostgreSQL
pool), Open311-shaped errors for every failure, the request metrics, the OpenAPI document without FastAPI's 422s —
and registers the Open311 routes and the operations probes."""

import asyncio
import time
from contextlib import asynccontextmanager
from functools import partial

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException

from processors.catalogue import Catalogue
from processors.geography import Geography
from streams.gateway.commands import add_command_api
from streams.gateway.formats import _BadRequest, _errors, _validation_messages, service_definitions
from streams.gateway.models import PUBLISH_TIMEOUT_S
from streams.gateway.probes import _Metrics, add_probes
from streams.gateway.routes import add_routes
from streams.gateway.throttle import Throttle
from streams.runtime import clients
from streams.settings import Settings

log = structlog.get_logger("patrol.gateway")

DESCRIPTION = (
    "Open311 GeoReport v2 intake of the integrated patrol brigade, in JSON and XML (by the path's extension). "
    "POST a request with your client system's `api_key`, a service_code from /services.json and a location inside "
    "the served area (lat/long, or an address matched against the street register); send an `Idempotency-Key` "
    "header (or `client_token` field) so that a resend is not a second request. Reads without a key show traffic "
    "and city-management requests, located to about 100 m; with its key a client sees its own in full. "
    "Errors are Open311 error arrays: `[{\"code\": 400, \"description\": \"...\"}]`."
)


def create_app(settings: Settings, catalogue: Catalogue | None = None, geography: Geography | None = None) -> FastAPI:
    """The gateway for these settings; catalogue and geography default to the ones the settings name."""
    from streams.reference import load_catalogue, load_geography

    if not settings.kafka_bootstrap or not settings.database_url:
        raise ValueError("the gateway needs PATROL_KAFKA_BOOTSTRAP and PATROL_DATABASE_URL")
    catalogue = load_catalogue(settings) if catalogue is None else catalogue
    geography = load_geography(settings) if geography is None else geography

    app = FastAPI(title="patrol-dispatch Open311 gateway", version="1.0.0", description=DESCRIPTION,
                  lifespan=lifespan)
    app.state.settings, app.state.catalogue, app.state.geography = settings, catalogue, geography
    app.state.definitions = service_definitions(catalogue)
    app.state.metrics = _Metrics()
    app.state.throttle = Throttle(settings)

    # errors in Open311's shape
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(_BadRequest, _bad)
    app.add_exception_handler(StarletteHTTPException, _http)
    for kind in (OSError, asyncio.TimeoutError, asyncpg.exceptions.PostgresConnectionError,
                 asyncpg.exceptions.CannotConnectNowError, asyncpg.exceptions.TooManyConnectionsError):
        app.add_exception_handler(kind, _unavailable)
    app.middleware("http")(_measure)
    # browsers may call it from these origins only; api keys travel in fields, not cookies: no credentials
    app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins(), allow_methods=["GET", "POST"],
                       allow_headers=["Content-Type", "Idempotency-Key"], allow_credentials=False, max_age=600)
    app.openapi = partial(_openapi, app)

    add_routes(app, catalogue, geography)
    add_command_api(app)  # the command centre's /command/v1 and the complainant's feedback
    add_probes(app)  # operations (not Open311; left out of the OpenAPI document)
    return app


@asynccontextmanager
async def lifespan(app: FastAPI):
    settings, catalogue, geography = app.state.settings, app.state.catalogue, app.state.geography
    producer = clients.producer(settings, linger_ms=0, request_timeout_ms=int(PUBLISH_TIMEOUT_S * 1000))
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


# ----------------------------------------------------------------------------- errors in Open311's shape


async def _invalid(request: Request, exc: RequestValidationError):
    return _errors(400, *_validation_messages(exc), request=request)


async def _bad(request: Request, exc: _BadRequest):
    return _errors(exc.status, *exc.descriptions, headers=exc.headers, request=request)


async def _http(request: Request, exc: StarletteHTTPException):
    return _errors(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None), request=request)


async def _unavailable(request: Request, exc: Exception):
    log.warning("database unavailable", error=type(exc).__name__)
    return _errors(503, "the request store is unavailable; retry shortly", headers={"Retry-After": "5"},
                   request=request)


async def _measure(request: Request, call_next):
    started = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    operation = getattr(route, "operation_id", None) or getattr(route, "name", None) or "unmatched"
    metrics = request.app.state.metrics
    metrics.requests.labels(operation, str(response.status_code)).inc()
    metrics.latency.labels(operation).observe(time.perf_counter() - started)
    return response


# ----------------------------------------------------------------------------- the OpenAPI document


def _openapi(app: FastAPI) -> dict:
    """The OpenAPI document: our 400s replace FastAPI's 422s."""
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
