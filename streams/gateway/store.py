"""The gateway's database reads: the incident a request id resolves to (its own, or the earlier one it was merged
into), from the `incidents` and `incident_events` tables the sink maintains."""

import asyncpg

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
