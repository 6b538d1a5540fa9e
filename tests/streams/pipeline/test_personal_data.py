"""Reporters' names and phones, and the free-text descriptions, through the real worker, broker and PostgreSQL:
they reach the incident record (and the callers' list), and no topic but the inbound one and the reporters' own
holds them: not the work log, incident.events, dispatch.orders, sla.escalations, the dead letters, the unit map
or the snapshots; nor does any row of the audit trail but the incident's."""

import json
import random
import uuid

import pytest
from aiokafka import AIOKafkaConsumer

from streams.runtime.consumer_loop import partitions_of
from streams.runtime.topics import (
    CONTRACT_TOPICS,
    INCIDENT_EVENTS,
    INCIDENT_REPORTS,
    internal_topics,
    reporters_topic,
    worklog_topic,
)
from tests.streams.conftest import Field, TopicReader, eventually, fresh_district, message, send

pytestmark = pytest.mark.integration


def holds(record: dict, *texts: str) -> bool:
    as_sent = json.dumps(record, ensure_ascii=False)
    return any(text in as_sent for text in texts)


def published_topics(settings) -> list[str]:
    """Every topic the platform writes, but the inbound one (the producers' own) and the reporters' (the private
    path from intake to the incident record)."""
    return [t for t in (*CONTRACT_TOPICS, *internal_topics(settings))
            if t not in (INCIDENT_REPORTS, reporters_topic(settings))]


async def everything_on(settings, topic: str) -> list[bytes]:
    """Every record's key and value on `topic`, from its beginning to where it ends now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                                fetch_max_wait_ms=settings.fetch_max_wait_ms, **settings.kafka_client_options())
    await consumer.start()
    try:
        partitions = await partitions_of(consumer, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[bytes] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=200, max_records=5000)).values():
                found += [(r.key or b"") + b" " + (r.value or b"") for r in records]
        return found
    finally:
        await consumer.stop()


async def test_a_reporter_and_description_reach_the_incident_record_and_nothing_else(infrastructure, worker, db):
    district = fresh_district()
    field = Field(district)
    run = uuid.uuid4().hex[:8]
    first, second = f"{run}-first", f"{run}-second"
    callers = {  # names and phones of this run only, so that finding them anywhere is finding these
        first: {"name": f"Caller {run}", "phone": f"139{random.randrange(10**8):08d}"},
        second: {"name": f"Neighbour {run}", "phone": f"137{random.randrange(10**8):08d}"},
    }
    descriptions = {first: f"Two men fighting outside the noodle shop, account {run}-d1",
                    second: f"Still fighting, bottles thrown, account {run}-d2"}
    personal = [text for reporter in callers.values() for text in reporter.values()]
    # a police unit on duty: the fight is dispatched, so that dispatch.orders holds its order
    unit = f"{run}-P1"
    await field.log_on_all(infrastructure, db, [(unit, "police", district.point(east_m=200))])

    def report(report_id: str, point, reporter: dict) -> dict:
        return {"schema_version": 1, "report_id": report_id, "source": "hotline", "category": "PS-FIGHT",
                "lat": point[0], "lon": point[1], "reported_at": "2026-11-25T07:59:00Z", "reporter": reporter,
                "description": descriptions.get(report_id, f"astray {run}")}

    async def recorded():
        return await db.fetchrow("SELECT incident_id, reporter, description FROM incidents WHERE report_id = $1 "
                                 "AND reporter IS NOT NULL AND description IS NOT NULL", first)

    # a fight; once it is an incident, a second call about it 20 m away (merged), and the first caller again
    # from outside the area (dead-lettered)
    await send(infrastructure, [message(INCIDENT_REPORTS, first, report(first, district.point(), callers[first]))])
    incident = await eventually(recorded)
    assert json.loads(incident["reporter"]) == callers[first]
    assert incident["description"] == descriptions[first]
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
    await eventually(lambda: db.fetchval("SELECT count(*) FROM dispatch_orders WHERE incident_id = $1",
                                         incident["incident_id"]))

    # the work log: both reports' entries, without either caller or description
    async with TopicReader(infrastructure, worklog_topic(infrastructure), {district.district}) as log:
        entries = await log.wait_for(lambda records: {first, second} <= {
            (r.get("report") or {}).get("report_id") for r in records})
    assert [r for r in entries if holds(r, *personal, *descriptions.values())] == []
    # incident.events: created and merged, without either caller or description
    async with TopicReader(infrastructure, INCIDENT_EVENTS, {incident["incident_id"]}) as topic:
        events = await topic.wait_for(lambda records: {"created", "report_merged", "dispatched"} <= {
            r["type"] for r in records})
    assert [e for e in events if holds(e, *personal, *descriptions.values())] == []
    # every topic the platform writes, read whole: neither caller and no description anywhere
    for topic in published_topics(infrastructure):
        records = await everything_on(infrastructure, topic)
        leaks = [r[:300] for r in records if any(text.encode() in r for text in personal)]
        assert leaks == [], topic
        assert [r[:300] for r in records if any(d.encode() in r for d in descriptions.values())] == [], topic
    # the audit trail's other tables: nothing of either caller, and no description, anywhere in them
    for table in ("incident_events", "dead_letters", "dispatch_orders", "escalations"):
        found = await db.fetchval(f"SELECT count(*) FROM {table} t WHERE t::text LIKE ANY($1::text[])",
                                  [f"%{text}%" for text in personal + list(descriptions.values())])
        assert found == 0, table


async def test_a_work_log_entry_written_before_the_upgrade_gives_its_reporter_and_description_to_the_record_only(
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
                         lon=lon, reported_at="2026-11-25T07:59:00Z", reporter=Reporter(**caller),
                         description=f"told before the upgrade {run}"))
    await send(infrastructure, [message(worklog_topic(infrastructure), district.district,
                                        json.loads(entry.model_dump_json(exclude_none=True)))])

    async def recorded():
        return await db.fetchrow("SELECT incident_id, reporter, description FROM incidents WHERE report_id = $1 "
                                 "AND reporter IS NOT NULL AND description IS NOT NULL", f"{run}-old")

    incident = await eventually(recorded)
    assert json.loads(incident["reporter"]) == caller
    assert incident["description"] == f"told before the upgrade {run}"
    async with TopicReader(infrastructure, INCIDENT_EVENTS, {incident["incident_id"]}) as topic:
        events = await topic.wait_for(lambda records: "created" in {r["type"] for r in records})
    assert [e for e in events if holds(e, *caller.values(), f"before the upgrade {run}")] == []


async def test_dead_letters_of_leaky_records_carry_masked_excerpts_and_their_hash(infrastructure, worker, db):
    """Each way a reporter once slipped through the masking, through the real worker into the dead letters (topic
    and table): nothing of the name or the phone but the last four digits, raw_masked only where masking
    happened, and the original's SHA-256."""
    import base64
    import hashlib

    run = uuid.uuid4().hex[:8]
    name, phone = f"Caller{run}", f"139{random.randrange(10**8):08d}"
    spaced = f"{phone[:3]} {phone[3:7]} {phone[7:]}"
    wide = phone.translate({ord(str(d)): chr(0xFF10 + d) for d in range(10)})

    def doc(**fields) -> dict:
        return {"schema_version": 1, "report_id": f"{run}-r", "source": "hotline", "category": "XX-NOPE",
                "lat": 30.652, "lon": 104.0765, "reported_at": "2026-11-25T07:59:00Z", **fields}

    leaky = {
        "invalid-json": f'{{"schema_version": 1, "reporter": {{"name": "{name}", "phone": "{phone}"}},}}'.encode(),
        "not-utf8": f'{{"reporter": {{"name": "{name}", "phone": "{phone}"}}, "x": "'.encode() + b'\xff\x00"}',
        "utf16": json.dumps(doc(reporter={"name": name, "phone": phone})).encode("utf-16-le"),
        "base64": base64.b64encode(json.dumps(doc(reporter={"name": name, "phone": phone})).encode()),
        "twice": f'{{"schema_version": 1, "reporter": {{"name": "{name}"}}, "reporter": {{"phone": "{phone}"}}}}'
                 .encode(),
        "list": json.dumps(doc(reporter={"name": [name, "x"], "phone": [phone]})).encode(),
        "spaced": json.dumps(doc(reporter={"phone": spaced}, description=f"call {phone[:3]}-{phone[3:7]}-"
                                                                             f"{phone[7:]}")).encode(),
        "wide": json.dumps(doc(reporter={"phone": wide}), ensure_ascii=False).encode(),
    }
    clean = json.dumps(doc(description="nothing personal")).encode()
    sent = {f"{run}-{label}": raw for label, raw in {**leaky, "clean": clean}.items()}
    from streams.operations.publish import Outgoing
    await send(infrastructure, [Outgoing(INCIDENT_REPORTS, key.encode(), raw) for key, raw in sent.items()])

    async def all_dead_lettered():
        rows = await db.fetch("SELECT * FROM dead_letters WHERE key = ANY($1::text[])", list(sent))
        return rows if len(rows) == len(sent) else None

    rows = {r["key"]: r for r in await eventually(all_dead_lettered)}
    secrets = [name, phone, spaced, wide, phone[:7]]
    for key, row in rows.items():
        assert row["raw_sha256"] == hashlib.sha256(sent[key]).hexdigest() and row["raw_length"] == len(sent[key])
        kept = base64.b64decode(row["raw"]) if row["raw_encoding"] == "base64" else row["raw"].encode()
        if key.endswith("-base64"):
            kept = base64.b64decode(kept)
        as_text = kept.decode("utf-16-le" if key.endswith("-utf16") else "utf-8", "replace")
        assert [s for s in secrets if s in as_text] == [], (key, as_text[:300])
        assert row["raw_masked"] == (not key.endswith("-clean")), key
    assert rows[f"{run}-clean"]["raw"].encode() == clean
    # the dead-letter topic holds the same letters: nothing of the caller there either
    records = await everything_on(infrastructure, "incident.reports.dlq")
    assert [r[:300] for r in records if any(s.encode() in r for s in (name, phone, spaced))] == []
