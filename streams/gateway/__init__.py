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

The package, by role:

- `models`   the Open311 request and response models and the gateway's constants
- `formats`  report ids, service definitions, error arrays, validation messages, search windows, the POSTed body
- `store`    the database reads (a request id to its incident)
- `routes`   the Open311 handlers and their registration
- `probes`   /healthz, /readyz, /metrics and the gateway's metrics registry
- `app`      `create_app`: lifespan, error handlers, request metrics, the OpenAPI document
"""

from streams.gateway.app import create_app
from streams.gateway.formats import report_id_for, service_definitions
from streams.gateway.models import (
    CLOSED_STATUSES,
    DEFAULT_WINDOW,
    ERRORS,
    ID_PATTERN,
    PROBE_TIMEOUT_S,
    PUBLISH_TIMEOUT_S,
    STATUS_NOTES,
    TOKEN_MAX,
    Open311Error,
    ServiceAttributes,
    ServiceDefinition,
    ServiceRequestCreated,
    ServiceRequestIn,
    ServiceRequestOut,
)

__all__ = [
    "CLOSED_STATUSES", "DEFAULT_WINDOW", "ERRORS", "ID_PATTERN", "PROBE_TIMEOUT_S", "PUBLISH_TIMEOUT_S", "STATUS_NOTES",
    "TOKEN_MAX", "Open311Error", "ServiceAttributes", "ServiceDefinition", "ServiceRequestCreated", "ServiceRequestIn",
    "ServiceRequestOut", "create_app", "report_id_for", "service_definitions",
]
