"""The Open311 formats the routes speak: report ids from client tokens, service definitions from the catalogue,
error arrays and the `_BadRequest` that makes them, validation messages, date windows and comma lists of a search,
and the POSTed body read as form fields or JSON within a size limit."""

import hashlib
import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from processors.catalogue import Catalogue, Category
from streams.gateway.models import DEFAULT_WINDOW, ServiceDefinition
from streams.gateway.renderers import XMLResponse, wants_xml, xml_document


def report_id_for(client: str, token: str | None) -> str:
    """Deterministic from the client and its token, so a resend is the same report, and two clients' equal tokens
    are two reports; random without a token."""
    if token is None:
        return f"GW-{uuid.uuid4().hex}"
    return "GW-" + hashlib.sha256(f"{client}\n{token}".encode("utf-8")).hexdigest()[:16]


def fingerprint(fields: dict[str, Any]) -> str:
    """The SHA-256 of a request's posted fields (what it asks; not the key or token it came with), in a canonical
    JSON form: a resend has the fingerprint of the first send, a different request under the same token does not."""
    asked = {k: v for k, v in fields.items() if k not in ("api_key", "client_token") and v is not None}
    return hashlib.sha256(json.dumps(asked, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


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


def _errors(status: int, *descriptions: str, headers: dict | None = None, request: Request | None = None) -> Response:
    """Open311's error array, as XML when the request's path asks for XML."""
    body = [{"code": status, "description": d} for d in descriptions]
    if request is not None and wants_xml(request):
        return XMLResponse(xml_document("errors", "error", body), status_code=status, headers=headers)
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_messages(exc: ValidationError | RequestValidationError) -> list[str]:
    messages = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
        field = ".".join(loc) or "request"
        text = err.get("msg", "invalid")
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
    def __init__(self, *descriptions: str, status: int = 400, headers: dict | None = None):
        super().__init__("; ".join(descriptions))
        self.descriptions = descriptions
        self.status = status
        self.headers = headers



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
