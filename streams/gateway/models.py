"""The Open311 wire: the gateway's constants (status words, id and token limits, time windows) and the request and
response models that make its OpenAPI document — service definitions, the POSTed fields, the created and the
status answers, and Open311's error array."""

import re
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from processors.incidents import CLOSED_STATUSES  # noqa: F401 - the gateway's word for it; one rule for all
STATUS_NOTES = {
    "created": "Registered (立案); a unit is being assigned.",
    "queued": "Registered; waiting for a free unit of the responsible agency.",
    "dispatched": "A unit has been dispatched (派遣).",
    "acknowledged": "The dispatched unit has acknowledged the task.",
    "en_route": "A unit is on its way.",
    "on_scene": "A unit is on scene, dealing with it (处置).",
    "resolved": "Dealt with on scene; awaiting verification and closure (核查结案).",
    "awaiting_verification": "Dealt with; awaiting your verification (核查): POST /requests/{id}/feedback.json.",
    "reopened": "Reported as not resolved; being dealt with again.",
    "closed": "Closed (结案).",
    "cancelled": "Cancelled.",
}
# Every id this platform issues matches the contract's Identifier pattern; anything else is unknown
# without asking the database (and cannot smuggle a NUL byte into a query).
ID_PATTERN = re.compile(r"^[A-Za-z0-9._:@/-]{1,128}$")
TOKEN_MAX = 200
DEFAULT_WINDOW = timedelta(days=90)  # Open311: a search spans at most 90 days; without dates, the last 90
PUBLISH_TIMEOUT_S = 15.0
# what anyone may read: these domains' requests, located to 0.001 degree (about 110 m north-south, 95 m east-west
# here); police matters, addresses, descriptions and media only to the client that posted them
PUBLIC_DOMAINS = ("traffic", "city_management")
COARSE_DECIMALS = 3
# when this API last changed (GET /discovery)
CHANGESET = datetime(2026, 12, 2, tzinfo=timezone.utc)
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
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
    lat: float | None = Field(default=None, ge=-90.0, le=90.0, allow_inf_nan=False,
                              description="WGS-84 latitude, inside the served area (or give an address)")
    long: float | None = Field(default=None, ge=-180.0, le=180.0, allow_inf_nan=False, description="WGS-84 longitude")
    address_string: str | None = Field(default=None, max_length=400, description="human-readable address; without "
                                       "lat/long it is matched against the street register and the request is "
                                       "located at street level")
    address_id: str | None = Field(default=None, max_length=128, description="a street code of the register (e.g. "
                                   "JJ-SYJ); without lat/long the request is located at street level")
    description: str | None = Field(default=None, max_length=4000)
    first_name: str | None = Field(default=None, max_length=190, description="kept in the incident record only")
    last_name: str | None = Field(default=None, max_length=190, description="kept in the incident record only")
    phone: str | None = Field(default=None, max_length=40, description="kept in the incident record only")
    email: str | None = Field(default=None, max_length=320, description="accepted and not kept")
    media_url: str | None = Field(default=None, max_length=2000, description="kept, and returned to the posting client")
    device_id: str | None = Field(default=None, max_length=200, description="accepted and ignored")
    account_id: str | None = Field(default=None, max_length=200, description="accepted and ignored")
    api_key: str | None = Field(default=None, max_length=200, description="the client system's API key (required; "
                                "also accepted as the query parameter api_key)")
    jurisdiction_id: str | None = Field(default=None, max_length=200, description="accepted and ignored")
    client_token: str | None = Field(
        default=None, min_length=1, max_length=TOKEN_MAX,
        description="idempotency token (or header Idempotency-Key), scoped to the client: a resend with the same "
                    "token and body is the same request; another body under a used token is refused (409)")

    @model_validator(mode="after")
    def _located(self) -> "ServiceRequestIn":
        if (self.lat is None) != (self.long is None):
            raise ValueError("lat and long go together: give both, or neither and an address_string or address_id")
        if self.lat is None and not (self.address_string or self.address_id):
            raise ValueError("a location is required: lat and long, or an address_string or address_id")
        return self


class ServiceRequestCreated(BaseModel):
    service_request_id: str
    token: str = Field(description="GET /tokens/{token} answers the service_request_id once it is registered")
    service_notice: str | None = None
    account_id: None = None


class TokenAnswer(BaseModel):
    service_request_id: str
    token: str


class DiscoveryEndpoint(BaseModel):
    specification: str
    url: str
    changeset: datetime
    type: Literal["production", "test"]
    formats: list[str]


class Discovery(BaseModel):
    changeset: datetime
    contact: str
    key_service: str
    endpoints: list[DiscoveryEndpoint]


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
    description: str | None = Field(default=None, description="as posted: to the client that posted it only")
    address: str | None = Field(default=None, description="to the client that posted it only")
    address_id: str | None = None
    zipcode: str | None = None
    lat: float = Field(description="to the public, rounded to 0.001 degree (about 100 m)")
    long: float = Field(description="to the public, rounded to 0.001 degree (about 100 m)")
    media_url: str | None = Field(default=None, description="as posted: to the client that posted it only")


ERRORS = {"model": list[Open311Error]}
