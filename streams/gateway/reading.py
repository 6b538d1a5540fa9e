"""GET /requests and /requests/{id} (and /tokens/{token}): requests as the public sees them — traffic and city
management matters only, located to about 100 m, without address, description or media — and, to a client that
names its api_key, its own requests in full. A police matter is not listed to the public, nor found by its id
(404, as an unknown id: its existence is not confirmed either)."""

from __future__ import annotations

from datetime import datetime, timezone

import asyncpg
from fastapi import Path, Query, Request

from processors.catalogue import Catalogue
from streams.gateway.formats import _BadRequest, _comma_list, _date_window
from streams.gateway.keys import Client
from streams.gateway.models import (
    CLOSED_STATUSES,
    COARSE_DECIMALS,
    ID_PATTERN,
    PUBLIC_DOMAINS,
    STATUS_NOTES,
    ServiceRequestOut,
    TokenAnswer,
)
from streams.gateway.posting import authenticated
from streams.gateway.renderers import render
from streams.gateway.store import _lookup, search

_API_KEY = Query(None, max_length=200, description="a client's API key: its own requests are shown in full")


def _visible(row: asyncpg.Record, client: Client | None) -> bool:
    return row["domain"] in PUBLIC_DOMAINS or (client is not None and row["client"] == client.client)


def _out(row: asyncpg.Record, catalogue: Catalogue, client: Client | None) -> ServiceRequestOut:
    category = catalogue.get(row["category"])
    expected = (catalogue.deadline(category, row["created_at"], category.sla.resolve_s)
                if category is not None else None)
    notes = STATUS_NOTES.get(row["status"], row["status"])
    if row["merged_at"] is not None:
        notes = f"Reported before as request {row['report_id']}; handled together with it. {notes}"
    requested = row["merged_at"] or row["created_at"]
    own = client is not None and row["client"] == client.client
    # its own client reads where it reported (a merged report's own place); anyone else, the incident's, coarsely
    lat, lon = (row["posted_lat"], row["posted_lon"]) if own else (round(row["lat"], COARSE_DECIMALS),
                                                                   round(row["lon"], COARSE_DECIMALS))
    return ServiceRequestOut(
        service_request_id=row["asked"], incident_id=row["incident_id"],
        status="closed" if row["status"] in CLOSED_STATUSES else "open", status_notes=notes,
        service_name=category.name if category else None, service_code=row["category"],
        agency_responsible=", ".join(category.agencies) if category else None,
        # a report merged into an incident whose status last changed before it came: updated when it was merged
        requested_datetime=requested, updated_datetime=max(row["status_at"], requested),
        expected_datetime=expected, lat=lat, long=lon,
        address=row["posted_address"] if own else None,
        description=row["posted_description"] if own else None,
        media_url=row["media_url"] if own else None)


async def _reader(request: Request, api_key: str | None) -> Client | None:
    """Anonymous without a key; with one, the client it belongs to (a bad key is a 403, not a quiet downgrade)."""
    return await authenticated(request, api_key) if api_key is not None else None


async def _found(request: Request, request_id: str, client: Client | None) -> asyncpg.Record | None:
    row = None
    if ID_PATTERN.match(request_id):
        async with request.app.state.pool.acquire() as connection:
            row = await _lookup(connection, request_id)
    return row if row is not None and _visible(row, client) else None


async def get_request(request: Request, service_request_id: str = Path(..., max_length=200),
                      jurisdiction_id: str | None = Query(None, max_length=200),
                      api_key: str | None = _API_KEY) -> list[ServiceRequestOut]:
    """One request's status. A request just submitted takes a few seconds to be registered."""
    client = await _reader(request, api_key)
    row = await _found(request, service_request_id, client)
    if row is None:
        raise _BadRequest(f"no service request {service_request_id!r}: unknown, or submitted moments ago and "
                          "still being registered (retry in a few seconds)", status=404)
    return render(request, "service_requests", [_out(row, request.app.state.catalogue, client)])


async def get_token(request: Request, token: str = Path(..., max_length=200),
                    jurisdiction_id: str | None = Query(None, max_length=200),
                    api_key: str | None = _API_KEY) -> list[TokenAnswer]:
    """The service_request_id a POST's token stands for, once the request is registered (404 until then)."""
    client = await _reader(request, api_key)
    row = await _found(request, token, client)
    if row is None or row["asked"] != token:
        raise _BadRequest(f"token {token!r} is unknown, or its request is still being registered (retry in a few "
                          "seconds)", status=404)
    return render(request, "service_requests", [TokenAnswer(service_request_id=row["asked"], token=token)])


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
    api_key: str | None = _API_KEY,
) -> list[ServiceRequestOut]:
    """Requests by service code, status and date range, newest first; reports merged into another are listed under
    their own id."""
    catalogue = request.app.state.catalogue
    client = await _reader(request, api_key)
    if service_request_id is not None:
        ids = _comma_list(service_request_id)
        if len(ids) > 100:
            raise _BadRequest("service_request_id: at most 100 ids")
        found = [row for row in [await _found(request, rid, client) for rid in ids] if row is not None]
        return render(request, "service_requests", [_out(row, catalogue, client) for row in found[:limit]])
    statuses = set(_comma_list(status)) if status is not None else {"open", "closed"}
    if not statuses or not statuses <= {"open", "closed"}:
        raise _BadRequest(f"status: {status!r} is not open, closed or open,closed")
    codes = _comma_list(service_code) if service_code is not None else None
    if codes is not None:
        codes = [c for c in codes if catalogue.get(c) is not None]  # unknown codes match nothing
        if not codes:
            return render(request, "service_requests", [])
    start, end = _date_window(start_date, end_date, datetime.now(timezone.utc))
    closed = None if statuses == {"open", "closed"} else statuses == {"closed"}
    async with request.app.state.pool.acquire() as connection:
        rows = await search(connection, codes=codes, closed=closed, closed_statuses=sorted(CLOSED_STATUSES),
                            start=start, end=end, limit=limit, public_domains=list(PUBLIC_DOMAINS),
                            client=client.client if client else None)
    return render(request, "service_requests", [_out(r, catalogue, client) for r in rows])
