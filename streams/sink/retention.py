"""Retention of reporters' personal data: once a report is older than PATROL_REPORTER_RETENTION_DAYS (180 by
default), its reporter's name and phone are erased from the incident record and the reporters table, its private
description with them, and the incident record's description keeps its text with phone numbers and named
persons masked (processors/privacy.py). Where anything was erased the erasure is recorded (`erased_at`,
`reporter_erased_at`, migration 0012); an erased row stays, so that a replay cannot write its reporter again.

Run by `patrol retention` (a cron job, a one-off after changing the period) and by the sink once an hour, so that
a deployment that forgets the cron job still keeps the promise. It takes no lock of the sink's: a report that old
has long left the reporters topic (7 days), so nothing writes its rows any more. Each batch is one transaction;
a run that stops half-way is finished by the next.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import asyncpg
import structlog

from processors.privacy import mask_personal_data
from streams.settings import Settings

log = structlog.get_logger("patrol.retention")

# rows erased per transaction: short transactions, never a table-long lock
BATCH = 500
# how often the sink runs it
EVERY_S = 3600.0


@dataclass(frozen=True)
class Erased:
    reports: int  # reporters rows whose reporter or description was erased
    incidents: int  # incident records whose reporter was erased or description masked
    before: datetime  # what was received before this was erased


def cutoff(settings: Settings, now: datetime | None = None) -> datetime:
    return (now or datetime.now(timezone.utc)) - timedelta(days=settings.reporter_retention_days)


async def erase_expired(connection: asyncpg.Connection, before: datetime) -> Erased:
    """Erase the personal data of every report received before `before`; what was erased already is left."""
    reports = incidents = 0
    while True:
        async with connection.transaction():
            erased = await connection.fetch(
                """WITH due AS (SELECT report_id FROM reporters
                                WHERE erased_at IS NULL AND received_at < $1
                                  AND (reporter IS NOT NULL OR description IS NOT NULL)
                                LIMIT $2 FOR UPDATE SKIP LOCKED)
                   UPDATE reporters r SET reporter = NULL, description = NULL, erased_at = now()
                   FROM due WHERE r.report_id = due.report_id RETURNING r.report_id""", before, BATCH)
        reports += len(erased)
        if len(erased) < BATCH:
            break
    while True:
        async with connection.transaction():
            due = await connection.fetch(
                """SELECT incident_id, description FROM incidents
                   WHERE reporter_erased_at IS NULL AND created_at < $1
                     AND (reporter IS NOT NULL OR description IS NOT NULL)
                   LIMIT $2 FOR UPDATE SKIP LOCKED""", before, BATCH)
            await connection.executemany(
                """UPDATE incidents SET reporter = NULL, description = $2, reporter_erased_at = now()
                   WHERE incident_id = $1""",
                [(r["incident_id"], _masked(r["description"])) for r in due])
        incidents += len(due)
        if len(due) < BATCH:
            break
    return Erased(reports, incidents, before)


async def run_once(settings: Settings) -> Erased:
    """One run against PATROL_DATABASE_URL (`patrol retention`)."""
    connection = await asyncpg.connect(settings.database_url)
    try:
        return await erase_expired(connection, cutoff(settings))
    finally:
        await connection.close()


def _masked(description: str | None) -> str | None:
    return mask_personal_data(description)[0] if description else description


class Periodic:
    """The sink's hourly run: `when_due` erases what has expired if an hour has passed since the last run, and
    says a failure (the database away) instead of raising it: the next hour runs again."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.last_run: float | None = None

    async def when_due(self, pool: asyncpg.Pool) -> Erased | None:
        if self.last_run is not None and time.monotonic() - self.last_run < EVERY_S:
            return None
        self.last_run = time.monotonic()
        try:
            async with pool.acquire() as connection:
                erased = await erase_expired(connection, cutoff(self.settings))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("retention could not run; tried again in an hour", error=f"{type(exc).__name__}: {exc}"[:300])
            return None
        if erased.reports or erased.incidents:
            log.info("reporters' personal data erased", reports=erased.reports, incidents=erased.incidents,
                     received_before=erased.before.isoformat())
        return erased
