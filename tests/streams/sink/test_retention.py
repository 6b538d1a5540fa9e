"""Retention against the real PostgreSQL: a report older than PATROL_REPORTER_RETENTION_DAYS loses its reporter
(the incident record's and the reporters table's), its private description, and its description's phone numbers,
and the erasure is recorded; a recent one keeps all of it. Run as an operator runs it, `patrol retention`, and as
the sink runs it."""

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import asyncpg

from processors.messages import IncidentEvent, Reporter, ReporterRecord
from streams.sink.retention import Periodic
from streams.sink.sink import Batch, write_batch


def incident_of(report_id: str, at: datetime, merged_report: str) -> list[IncidentEvent]:
    incident = f"INC-{report_id}"
    return [IncidentEvent(schema_version=1, event_id=f"{incident}:1", incident_id=incident, seq=1, type="created", at=at,
                          data={"report_id": report_id, "category": "PS-FIGHT", "domain": "public_security",
                                "priority": 1, "district": "JINJIANG", "street": "JJ-CXL", "lat": 30.65,
                                "lon": 104.07, "reported_at": at.isoformat()}),
            IncidentEvent(schema_version=1, event_id=f"{incident}:2", incident_id=incident, seq=2,
                          type="report_merged", at=at, data={"report_id": merged_report, "source": "hotline"})]


def private(report_id: str, at: datetime, name: str) -> ReporterRecord:
    return ReporterRecord(report_id=report_id, reporter=Reporter(name=name, phone="13812345678"),
                          description=f"{name} says: call me on 138 1234 5678", received_at=at)


async def written(db, age: timedelta) -> tuple[str, str]:
    """An incident of a report `age` old with its reporter and description, and a second caller merged into it."""
    run = uuid.uuid4().hex[:8]
    at = datetime.now(timezone.utc) - age
    first, second = f"R-{run}", f"R2-{run}"
    await write_batch(db, Batch(events=incident_of(first, at, second),
                                reporters=[private(first, at, f"Wang {run}"), private(second, at, f"Li {run}")]))
    return f"INC-{first}", run


async def state_of(db, incident: str, run: str) -> dict:
    row = await db.fetchrow("SELECT reporter, description, reporter_erased_at FROM incidents WHERE incident_id = $1",
                            incident)
    reports = await db.fetch("SELECT reporter, description, erased_at FROM reporters WHERE report_id LIKE $1",
                             f"%-{run}")
    callers = await db.fetchval("SELECT count(*) FROM incident_reporters WHERE incident_id = $1", incident)
    return {"reporter": json.loads(row["reporter"]) if row["reporter"] else None, "description": row["description"],
            "erased_at": row["reporter_erased_at"], "reports": reports, "callers": callers}


def patrol_retention(infrastructure) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PATROL_")}
    return subprocess.run([sys.executable, "-m", "streams.cli", "retention"], capture_output=True, text=True,
                          env={**clean, **infrastructure.to_env()}, timeout=120)


async def test_patrol_retention_erases_an_old_reporter_and_keeps_a_recent_one(infrastructure, db):
    old, old_run = await written(db, timedelta(days=181))
    recent, recent_run = await written(db, timedelta(days=179))

    done = patrol_retention(infrastructure)
    assert done.returncode == 0, done.stderr
    assert "erased the personal data of" in done.stdout

    erased = await state_of(db, old, old_run)
    assert erased["reporter"] is None and erased["erased_at"] is not None
    # the record keeps what happened, its phone numbers masked (a name in free text cannot be told from words)
    assert erased["description"] == f"Wang {old_run} says: call me on *** **** 5678"
    assert [(r["reporter"], r["description"]) for r in erased["reports"]] == [(None, None), (None, None)]
    assert all(r["erased_at"] is not None for r in erased["reports"]) and erased["callers"] == 0

    kept = await state_of(db, recent, recent_run)
    assert kept["reporter"] == {"name": f"Wang {recent_run}", "phone": "13812345678"} and kept["erased_at"] is None
    assert kept["description"] == f"Wang {recent_run} says: call me on 138 1234 5678"
    assert all(r["reporter"] is not None and r["erased_at"] is None for r in kept["reports"]) and kept["callers"] == 2

    # run again: nothing more to erase, and the erasure's record stands
    again = patrol_retention(infrastructure)
    assert again.returncode == 0 and (await state_of(db, old, old_run))["erased_at"] == erased["erased_at"]
    # a replay of the old report's reporter (the topic's retention is far shorter; the rows say why it changes
    # nothing) does not bring it back
    await write_batch(db, Batch(reporters=[private(f"R-{old_run}", datetime.now(timezone.utc), "Wang again")]))
    assert (await state_of(db, old, old_run))["reporter"] is None


async def test_the_sink_erases_what_expired_at_most_once_an_hour(infrastructure, db):
    old, run = await written(db, timedelta(days=200))
    periodic = Periodic(infrastructure.with_overrides(reporter_retention_days=180))
    pool = await asyncpg.create_pool(infrastructure.database_url, min_size=0, max_size=1)
    try:
        first = await periodic.when_due(pool)
        assert first is not None and first.incidents >= 1
        assert (await state_of(db, old, run))["reporter"] is None
        assert await periodic.when_due(pool) is None  # not again within the hour
    finally:
        await pool.close()
