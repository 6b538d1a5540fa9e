"""The gateway's database reads and writes: the incident a request id resolves to (its own, or the earlier one it
was merged into), lists of requests (merged ones under their own id), and the gateway's record of who posted what
under which idempotency key (`gateway_requests`, migration 0009)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import asyncpg

_INCIDENT_COLUMNS = ("i.incident_id, i.report_id, i.category, i.domain, i.status, i.status_at, i.created_at, "
                     "i.address, i.lat, i.lon")
# what the posting client reads of its own request: where it put it, and (from the reporters table, where a
# report's personal data is kept until retention erases it) the description it gave
_POSTED = ("g.client, g.lat AS posted_lat, g.lon AS posted_lon, g.address AS posted_address, g.media_url, "
           "(SELECT rp.description FROM reporters rp WHERE rp.report_id = g.report_id) AS posted_description")


async def _lookup(connection: asyncpg.Connection, request_id: str) -> asyncpg.Record | None:
    """The incident a request id belongs to: its own, one it was merged into, or (an incident id) itself; with who
    posted it through the gateway, if it came that way."""
    row = await connection.fetchrow(
        f"""SELECT {_INCIDENT_COLUMNS}, i.report_id AS asked, NULL::timestamptz AS merged_at, {_POSTED}
            FROM incidents i LEFT JOIN gateway_requests g ON g.report_id = i.report_id
            WHERE i.report_id = $1 OR i.incident_id = $1
            ORDER BY (i.report_id = $1) DESC LIMIT 1""", request_id)
    if row is not None:
        return row
    # A later report of the same matter: the district core merged it (event data carries its report_id).
    return await connection.fetchrow(
        f"""SELECT {_INCIDENT_COLUMNS}, e.data->>'report_id' AS asked, e.at AS merged_at, {_POSTED}
            FROM incident_events e JOIN incidents i USING (incident_id)
            LEFT JOIN gateway_requests g ON g.report_id = e.data->>'report_id'
            WHERE e.type = 'report_merged' AND e.data->>'report_id' = $1
            ORDER BY e.at LIMIT 1""", request_id)


async def search(connection: asyncpg.Connection, *, codes: list[str] | None, closed: bool | None,
                 closed_statuses: list[str], start: datetime, end: datetime, limit: int,
                 public_domains: list[str], client: str | None) -> list[asyncpg.Record]:
    """Requests by code, status and date, newest first: every incident under its first report's id and every
    report merged into one under its own; the public's domains, and the client's own requests whatever their domain."""
    return await connection.fetch(
        f"""WITH listed AS (
                SELECT incident_id, report_id AS asked, NULL::timestamptz AS merged_at, created_at AS requested_at
                FROM incidents WHERE created_at >= $4 AND created_at <= $5
                UNION ALL
                SELECT incident_id, data->>'report_id', at, at
                FROM incident_events WHERE type = 'report_merged' AND at >= $4 AND at <= $5)
            SELECT {_INCIDENT_COLUMNS}, l.asked, l.merged_at, {_POSTED}
            FROM listed l JOIN incidents i USING (incident_id) LEFT JOIN gateway_requests g ON g.report_id = l.asked
            WHERE ($1::text[] IS NULL OR i.category = ANY($1::text[]))
              AND ($2::boolean IS NULL OR (i.status = ANY($3::text[])) = $2)
              AND (i.domain = ANY($7::text[]) OR g.client = $8)
            ORDER BY l.requested_at DESC, l.asked LIMIT $6""",
        codes, closed, closed_statuses, start, end, limit, public_domains, client)


Outcome = Literal["new", "resend", "conflict"]


async def record_post(connection: asyncpg.Connection, *, report_id: str, client: str, idempotency_key: str | None,
                      fingerprint: str, lat: float, lon: float, address: str | None,
                      media_url: str | None) -> Outcome:
    """Record a POST before it is published: `new`, a `resend` of the same body under the client's idempotency key,
    or a `conflict` (another body under a key the client has used). Two sends racing take the unique index's word."""
    inserted = await connection.fetchval(
        """INSERT INTO gateway_requests (report_id, client, idempotency_key, fingerprint, lat, lon, address,
                                         media_url)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING report_id""",
        report_id, client, idempotency_key, fingerprint, lat, lon, address, media_url)
    if inserted is not None:
        return "new"
    first = await connection.fetchval(
        "SELECT fingerprint FROM gateway_requests WHERE report_id = $1 AND client = $2", report_id, client)
    return "resend" if first == fingerprint else "conflict"
