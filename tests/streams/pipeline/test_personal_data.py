"""Reporters' names and phones through the real worker, broker and PostgreSQL: they reach the incident record and
the callers' list, and none of the work log, incident.events, the event log or the dead letters holds them."""

import json
import random
import uuid

import pytest

from streams.runtime.topics import INCIDENT_EVENTS, INCIDENT_REPORTS, worklog_topic
from tests.streams.conftest import TopicReader, eventually, fresh_district, message, send

pytestmark = pytest.mark.integration


def holds(record: dict, *texts: str) -> bool:
    as_sent = json.dumps(record, ensure_ascii=False)
    return any(text in as_sent for text in texts)


async def test_a_reporter_reaches_the_incident_record_and_nothing_else(infrastructure, worker, db):
    district = fresh_district()
    run = uuid.uuid4().hex[:8]
    first, second = f"{run}-first", f"{run}-second"
    callers = {  # names and phones of this run only, so that finding them anywhere is finding these
        first: {"name": f"Caller {run}", "phone": f"139{random.randrange(10**8):08d}"},
        second: {"name": f"Neighbour {run}", "phone": f"137{random.randrange(10**8):08d}"},
    }
    personal = [text for reporter in callers.values() for text in reporter.values()]

    def report(report_id: str, point, reporter: dict) -> dict:
        return {"schema_version": 1, "report_id": report_id, "source": "hotline", "category": "PS-FIGHT",
                "lat": point[0], "lon": point[1], "reported_at": "2026-11-25T07:59:00Z", "reporter": reporter}

    async def recorded():
        return await db.fetchrow("SELECT incident_id, reporter FROM incidents WHERE report_id = $1 AND reporter "
                                 "IS NOT NULL", first)

    # a fight; once it is an incident, a second call about it 20 m away (merged), and the first caller again
    # from outside the area (dead-lettered)
    await send(infrastructure, [message(INCIDENT_REPORTS, first, report(first, district.point(), callers[first]))])
    incident = await eventually(recorded)
    assert json.loads(incident["reporter"]) == callers[first]
    await send(infrastructure, [
        message(INCIDENT_REPORTS, second, report(second, district.point(north_m=20), callers[second])),
        message(INCIDENT_REPORTS, f"{run}-astray", report(f"{run}-astray", (39.9, 116.4), callers[first]))])

    async def both_callers():
        rows = await db.fetch("SELECT report_id, reporter FROM incident_reporters WHERE incident_id = $1",
                              incident["incident_id"])
        return rows if len(rows) == 2 else None

    assert {r["report_id"]: json.loads(r["reporter"]) for r in await eventually(both_callers)} == callers
    letter = await eventually(lambda: db.fetchrow("SELECT * FROM dead_letters WHERE key = $1", f"{run}-astray"))
    assert letter["reason"] == "outside_area" and letter["raw_masked"]

    # the work log: both reports' entries, without either caller
    async with TopicReader(infrastructure, worklog_topic(infrastructure), {district.district}) as log:
        entries = await log.wait_for(lambda records: {first, second} <= {
            (r.get("report") or {}).get("report_id") for r in records})
    assert [r for r in entries if holds(r, *personal)] == []
    # incident.events: created and merged, without either caller
    async with TopicReader(infrastructure, INCIDENT_EVENTS, {incident["incident_id"]}) as topic:
        events = await topic.wait_for(lambda records: {"created", "report_merged"} <= {r["type"] for r in records})
    assert [e for e in events if holds(e, *personal)] == []
    # the audit trail's other tables: nothing of either caller, anywhere in them
    for table in ("incident_events", "dead_letters"):
        found = await db.fetchval(f"SELECT count(*) FROM {table} t WHERE t::text LIKE ANY($1::text[])",
                                  [f"%{text}%" for text in personal])
        assert found == 0, table


async def test_a_work_log_entry_written_before_the_upgrade_gives_its_reporter_to_the_incident_record_only(
        infrastructure, worker, db):
    from datetime import datetime, timezone

    from processors.messages import IncidentReport, Reporter, WorkItem

    district = fresh_district()
    run = uuid.uuid4().hex[:8]
    caller = {"name": f"Caller {run}", "phone": f"139{random.randrange(10**8):08d}"}
    lat, lon = district.point()
    # as the intake of an earlier release wrote it: the report whole, reporter included
    entry = WorkItem(kind="report", district=district.district, street=district.streets[0],
                     at=datetime.now(timezone.utc), report=IncidentReport(
                         schema_version=1, report_id=f"{run}-old", source="hotline", category="PS-FIGHT", lat=lat,
                         lon=lon, reported_at="2026-11-25T07:59:00Z", reporter=Reporter(**caller)))
    await send(infrastructure, [message(worklog_topic(infrastructure), district.district,
                                        json.loads(entry.model_dump_json(exclude_none=True)))])

    async def recorded():
        return await db.fetchrow("SELECT incident_id, reporter FROM incidents WHERE report_id = $1 AND reporter "
                                 "IS NOT NULL", f"{run}-old")

    incident = await eventually(recorded)
    assert json.loads(incident["reporter"]) == caller
    async with TopicReader(infrastructure, INCIDENT_EVENTS, {incident["incident_id"]}) as topic:
        events = await topic.wait_for(lambda records: "created" in {r["type"] for r in records})
    assert [e for e in events if holds(e, *caller.values())] == []
