"""The intake gateway for hotlines, citizen apps and sensor networks: an Open311 GeoReport v2 HTTP API, in JSON and
XML (by the path's extension: `.json`, `.xml`; no extension answers JSON).

    GET  /discovery.{json,xml}          where this endpoint is, its specification and formats
    GET  /services.{json,xml}           the catalogue (权责清单) as Open311 service definitions
    GET  /services/{code}.{json,xml}    one service definition (no extra attributes: metadata is false)
    POST /requests.{json,xml}           a client system's request (api_key required) -> an IncidentReport
    GET  /requests/{id}.{json,xml}      one request's status, from PostgreSQL
    GET  /requests.{json,xml}           requests by service_code, status, date range
    GET  /tokens/{token}.{json,xml}     the service_request_id a POST's token stands for, once registered
    (every path also without its extension; /openapi.json is the OpenAPI document)

How it keeps the platform's promises:

- **It knows its callers.** Writes need the api_key of a client system (`patrol keys issue`; kept as a SHA-256
  hash), whose role (citizen_app, hotline, sensor) decides what it may post: police and priority-1 matters come
  from the hotline and sensors only. A missing, unknown or revoked key is a 403.
- **Rate limited and cross-origin only where allowed.** Per client address and per key (429 with Retry-After);
  browsers may call it from the configured origins only (CORS).
- **Idempotent, per client.** The report id is derived from the client and its token (header `Idempotency-Key`
  or field `client_token`): a resend of the same body publishes the same `report_id`, which the district core
  recognises; a different body under a used token is a 409 (and the core dead-letters a differing resend that
  reaches it some other way). Without a token every POST is a new request.
- **Only admissible input is published.** The POST is admitted by intake's own function (`admit_report`) on the
  very bytes to be published: what intake would dead-letter is a 400 here.
- **Personal data stays in.** The reporter's name and phone go to the incident record (through the report) and
  are never returned, logged or labelled. The public reads traffic and city-management requests only, located to
  about 100 m, without address, description or media; a client with its key reads its own in full.
- **Reads are views of the audit trail.** Status comes from the `incidents` table the sink maintains; a report
  merged into an earlier incident is listed under its own id and resolves to that incident.

`create_app(settings)` builds the app; `patrol gateway` serves it with uvicorn. It needs a running broker
(PATROL_KAFKA_BOOTSTRAP) and database (PATROL_DATABASE_URL); both clients start in the app's lifespan.

The package, by role:

- `models`     the Open311 request and response models and the gateway's constants
- `formats`    report ids, fingerprints, service definitions, error arrays, validation messages, search windows, bodies
- `renderers`  every answer as JSON or XML
- `keys`       API keys and roles; `keys_cli` the `patrol keys` verbs
- `throttle`   rate limits per client address and per key
- `addresses`  a location given by address alone, matched against the street register
- `store`      the database reads and the record of who posted what
- `posting`    POST /requests; `reading` GET /requests, /requests/{id}, /tokens/{token}
- `routes`     services, discovery, and every route's registration
- `probes`     /healthz, /readyz, /metrics and the gateway's metrics registry
- `app`        `create_app`: lifespan, error handlers, CORS, request metrics, the OpenAPI document
"""

import importlib

# where each name is; imported when first asked for (PEP 562), so that `patrol keys` and every other verb do not
# pay for FastAPI and the Kafka client at start-up
_EXPORTS = {
    "create_app": "app", "report_id_for": "formats", "service_definitions": "formats",
    **{name: "models" for name in (
        "CLOSED_STATUSES", "DEFAULT_WINDOW", "ERRORS", "ID_PATTERN", "PROBE_TIMEOUT_S", "PUBLISH_TIMEOUT_S",
        "STATUS_NOTES", "TOKEN_MAX", "Open311Error", "ServiceAttributes", "ServiceDefinition", "ServiceRequestCreated",
        "ServiceRequestIn", "ServiceRequestOut")},
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
