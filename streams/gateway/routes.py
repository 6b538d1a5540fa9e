"""The Open311 routes: the services catalogue and discovery here, posting in `posting`, reading in `reading`; each
registered by `add_routes` on an APIRouter under its `.json` path, its `.xml` path and the bare one (JSON), every one behind the
client address's rate limit. What a handler needs (settings, catalogue, geography, metrics, the Kafka producer, the
database pool, the rate limits) it finds on `request.app.state`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request

from processors.catalogue import Catalogue
from processors.geography import Geography
from streams.gateway.formats import _BadRequest
from streams.gateway.models import (
    CHANGESET,
    ERRORS,
    SPECIFICATION,
    Discovery,
    DiscoveryEndpoint,
    ServiceAttributes,
    ServiceDefinition,
    ServiceRequestCreated,
    ServiceRequestIn,
    ServiceRequestOut,
    TokenAnswer,
)
from streams.gateway.posting import post_request
from streams.gateway.reading import get_request, get_token, list_requests
from streams.gateway.renderers import XML_MEDIA_TYPE, XMLResponse, render
from streams.gateway.throttle import throttled

_XML = {"content": {XML_MEDIA_TYPE: {"schema": {"type": "string"}}}}


def route(router: APIRouter, method: str, base: str, name: str, endpoint, model, errors: tuple[int, ...],
          **options) -> None:
    """One endpoint under Open311's `.json` and `.xml` paths and the bare one (JSON), each its own operation."""
    codes = (*errors, 403, 429)
    for suffix in (".json", ".xml", ""):
        as_xml = suffix == ".xml"
        formats = ({"response_model": None, "response_class": XMLResponse,
                    "responses": {code: {**_XML, "description": "Open311 errors (XML)"} for code in codes}}
                   if as_xml else {"response_model": model, "responses": {code: ERRORS for code in codes}})
        router.add_api_route(f"{base}{suffix}", endpoint, methods=[method],
                          operation_id=f"{name}_{suffix[1:]}" if suffix else name,
                          dependencies=[Depends(throttled)], **formats, **options)


# ----------------------------------------------------------------------------- services and discovery


async def get_services(request: Request,
                       jurisdiction_id: str | None = Query(None, max_length=200)) -> list[ServiceDefinition]:
    """The catalogue of powers and duties (权责清单) as Open311 service definitions."""
    return render(request, "services", request.app.state.definitions)


async def get_service(request: Request, service_code: str = Path(..., max_length=128),
                      jurisdiction_id: str | None = Query(None, max_length=200)) -> ServiceAttributes:
    """A service definition's attributes: none (every service has metadata false)."""
    if request.app.state.catalogue.get(service_code) is None:
        raise _BadRequest(f"service_code {service_code!r} is not a service of this jurisdiction", status=404)
    return render(request, "service_definition", ServiceAttributes(service_code=service_code, attributes=[]))


async def get_discovery(request: Request) -> Discovery:
    """Where this Open311 endpoint is, which specification and formats it speaks, and how to get an api_key."""
    endpoint = DiscoveryEndpoint(specification=SPECIFICATION, url=str(request.base_url).rstrip("/"),
                                 changeset=CHANGESET, type="production", formats=["application/json", XML_MEDIA_TYPE])
    return render(request, "discovery", Discovery(
        changeset=CHANGESET, contact="the integrated patrol brigade's command centre (operators of this gateway)",
        key_service="api keys are issued per client system by the operators (patrol keys issue)",
        endpoints=[endpoint]))


# ----------------------------------------------------------------------------- the POST's document


def request_body_doc(catalogue: Catalogue, geography: Geography) -> dict:
    """The POST's request body in the OpenAPI document, made from the catalogue and geography in force: the codes
    one may post, and an example located in the first street of the served area."""
    form_schema = ServiceRequestIn.model_json_schema()
    form_schema.pop("description", None)
    form_schema["properties"]["service_code"]["enum"] = catalogue.codes
    inside = geography.streets[0].polygon.representative_point()
    example = {"service_code": catalogue.codes[0], "lat": round(inside.y, 6), "long": round(inside.x, 6),
               "address_string": "Example Street 1", "description": "What is happening, where exactly",
               "api_key": "the key your client system was issued"}
    return {"requestBody": {"required": True, "content": {
        "application/x-www-form-urlencoded": {"schema": form_schema, "example": example},
        "application/json": {"schema": form_schema, "example": example}}}}


def add_routes(app: FastAPI, catalogue: Catalogue, geography: Geography) -> None:
    """The Open311 endpoints, in the order of the OpenAPI document (each path before the bare path that would
    otherwise read its extension as part of an id)."""
    router = APIRouter()
    route(router, "GET", "/discovery", "discovery", get_discovery, Discovery, (400,))
    route(router, "GET", "/services", "list_services", get_services, list[ServiceDefinition], (400,))
    route(router, "GET", "/services/{service_code}", "get_service", get_service, ServiceAttributes, (400, 404))
    route(router, "POST", "/requests", "create_request", post_request, list[ServiceRequestCreated],
          (400, 409, 413, 415, 503), status_code=201, openapi_extra=request_body_doc(catalogue, geography))
    route(router, "GET", "/requests/{service_request_id}", "get_request", get_request, list[ServiceRequestOut],
          (400, 404))
    route(router, "GET", "/requests", "list_requests", list_requests, list[ServiceRequestOut], (400,))
    route(router, "GET", "/tokens/{token}", "get_token", get_token, list[TokenAnswer], (400, 404))
    app.include_router(router)
