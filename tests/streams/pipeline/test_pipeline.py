"""The walking skeleton end to end: reports and unit events through a real worker on a real broker into PostgreSQL."""

import json
import uuid

import pytest

from streams.operations.publish import Outgoing
from streams.runtime.topics import INCIDENT_REPORTS, UNIT_EVENTS
from tests.streams.conftest import eventually, send

pytestmark = [pytest.mark.integration, pytest.mark.smoke]


def report(report_id: str, **overrides) -> dict:
    doc = {
        "schema_version": 1, "report_id": report_id, "source": "hotline", "category": "PS-FIGHT",
        "lat": 30.652, "lon": 104.0765, "reported_at": "2026-11-25T07:59:00Z",
        "reporter": {"name": "Zhang San", "phone": "13800001234"},
    }
    doc.update(overrides)
    return doc


def out(doc, topic=INCIDENT_REPORTS, key=None) -> Outgoing:
    value = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    if key is None and isinstance(doc, dict):
        key = doc.get("report_id") or doc.get("unit_id")
    return Outgoing(topic, key.encode() if key else None, value)


async def test_each_report_becomes_one_incident_or_one_dead_letter(infrastructure, worker, db):
    run = uuid.uuid4().hex[:8]
    valid = [report(f"{run}-ok-{i}", category=c, lat=lat, lon=lon)
             for i, (c, lat, lon) in enumerate([("PS-FIGHT", 30.652, 104.0765), ("TR-ACCIDENT", 30.63, 104.09),
                                                 ("CM-GARBAGE", 30.57, 104.12)])]
    invalid = {
        "invalid_json": out(b"{ not json", key=f"{run}-bad-json"),
        "schema_violation": out(report(f"{run}-bad-type", lat="north")),
        "unknown_category": out(report(f"{run}-bad-cat", category="XX-NOPE")),
        "outside_area": out(report(f"{run}-bad-area", lat=39.9, lon=116.4)),
        "reported_in_future": out(report(f"{run}-bad-future", reported_at="2099-01-01T00:00:00Z")),
        "oversize": out(report(f"{run}-bad-big", attributes={"blob": "x" * 100_000})),
    }
    # every valid report is sent twice: a resend must not become a second incident
    await send(infrastructure, [out(r) for r in valid] + list(invalid.values()) + [out(r) for r in valid])

    async def incidents():
        rows = await db.fetch("SELECT * FROM incidents WHERE report_id LIKE $1", f"{run}-%")
        return rows if len(rows) == len(valid) else None

    async def letters():
        rows = await db.fetch("SELECT * FROM dead_letters WHERE key LIKE $1", f"{run}-%")
        return rows if len(rows) == len(invalid) else None

    rows = await eventually(incidents)
    assert {r["report_id"] for r in rows} == {r["report_id"] for r in valid}
    by_report = {r["report_id"]: r for r in rows}
    assert by_report[f"{run}-ok-1"]["category"] == "TR-ACCIDENT"
    assert by_report[f"{run}-ok-0"]["street"] == "JJ-SYJ"
    assert json.loads(by_report[f"{run}-ok-0"]["reporter"]) == {"name": "Zhang San", "phone": "13800001234"}

    dead = await eventually(letters)
    assert {r["key"]: r["reason"] for r in dead} == {
        m.key.decode(): reason for reason, m in invalid.items()}
    json_letter = next(r for r in dead if r["reason"] == "invalid_json")
    assert (json_letter["raw"], json_letter["topic"]) == ("{ not json", INCIDENT_REPORTS)
    # the reporter's phone is in the incident record, and only masked in a dead letter
    category_letter = next(r for r in dead if r["reason"] == "unknown_category")
    assert category_letter["raw_masked"] and "13800001234" not in category_letter["raw"]

    # each incident has exactly one `created` event in the audit log, despite the resend
    events = await db.fetch(
        "SELECT incident_id, type, seq FROM incident_events WHERE incident_id = ANY($1::text[])",
        [r["incident_id"] for r in rows])
    assert sorted(e["incident_id"] for e in events if e["type"] == "created") == sorted(
        r["incident_id"] for r in rows)
    assert all(e["seq"] == 1 for e in events if e["type"] == "created")
    worker.assert_alive()


async def test_unit_events_are_routed_and_unknown_units_dead_lettered(infrastructure, worker, db):
    run = uuid.uuid4().hex[:8]
    unit = f"{run}-U1"
    log_on = {"schema_version": 1, "event_id": f"{run}-e1", "unit_id": unit, "at": "2026-11-25T07:00:00Z",
              "type": "log_on", "agency": "police", "kind": "officer", "district": "JINJIANG",
              "home_street": "JJ-CXL", "mode": "car", "lat": 30.65, "lon": 104.07}
    location = {"schema_version": 1, "event_id": f"{run}-e2", "unit_id": unit, "at": "2026-11-25T07:01:00Z",
                "type": "location", "lat": 30.651, "lon": 104.071}
    stranger = {**location, "unit_id": f"{run}-U2", "event_id": f"{run}-e3"}
    await send(infrastructure, [out(log_on, UNIT_EVENTS), out(location, UNIT_EVENTS), out(stranger, UNIT_EVENTS)])

    async def stranger_letter():
        return await db.fetchrow("SELECT * FROM dead_letters WHERE key = $1", f"{run}-U2")

    letter = await eventually(stranger_letter)
    assert letter["reason"] == "unknown_unit" and letter["topic"] == UNIT_EVENTS
    # the logged-on unit's events were accepted: nothing of it was dead-lettered
    assert await db.fetchval("SELECT count(*) FROM dead_letters WHERE key = $1", unit) == 0
    worker.assert_alive()
