"""The sink's writes against the real PostgreSQL: idempotent, and the incident record follows its events and
takes its reporter, whichever comes first."""

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from processors.messages import DeadLetter, IncidentEvent, Reporter, ReporterRecord
from streams.sink.sink import Batch, write_batch

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)


# the least payload each type carries (processors/event_data.py)
PAYLOADS = {
    "dispatched": {"units": [{"unit_id": "U-1", "agency": "police", "role": "lead"}]},
    "acknowledged": {"unit_id": "U-1", "order_id": "O-1"},
}


def event(incident_id, seq, type_, data=None):
    return IncidentEvent(schema_version=1, event_id=f"{incident_id}:{seq}", incident_id=incident_id, seq=seq,
                         type=type_, at=T0 + timedelta(seconds=seq), data=data or PAYLOADS.get(type_, {}))


def created(incident_id, report_id):
    return event(incident_id, 1, "created", {
        "report_id": report_id, "category": "PS-FIGHT", "domain": "public_security", "priority": 1,
        "district": "JINJIANG", "street": "JJ-CXL", "lat": 30.65, "lon": 104.07,
        "reported_at": "2026-11-25T07:59:00+00:00", "reporter": {"name": "Li", "phone": "138"}})


def new_created(incident_id, report_id):
    """A `created` event as the district core writes it now: without a reporter."""
    first = created(incident_id, report_id)
    return first.model_copy(update={"data": {k: v for k, v in first.data.items() if k != "reporter"}})


def reporter(report_id, name="Wang Fang", phone="13812345678"):
    return ReporterRecord(report_id=report_id, reporter=Reporter(name=name, phone=phone), received_at=T0)


async def _reporter_of(db, incident_id: str):
    value = await db.fetchval("SELECT reporter FROM incidents WHERE incident_id = $1", incident_id)
    return json.loads(value) if value else None


async def _status_is(db, incident_id: str, status: str) -> bool:
    return await db.fetchval("SELECT status FROM incidents WHERE incident_id = $1", incident_id) == status


async def test_a_replayed_batch_changes_nothing(db):
    incident = f"INC-{uuid.uuid4().hex[:8]}"
    letter = DeadLetter(schema_version=1, reason="invalid_json", error="x", raw="{", topic="incident.reports",
                        partition=0, offset=int(uuid.uuid4().int % 10**12), received_at=T0)
    batch = Batch(events=[created(incident, f"R-{incident}"), event(incident, 2, "dispatched")],
                  dead_letters=[letter])
    await write_batch(db, batch)
    await write_batch(db, batch)
    assert await db.fetchval("SELECT count(*) FROM incident_events WHERE incident_id = $1", incident) == 2
    assert await db.fetchval("SELECT count(*) FROM incidents WHERE incident_id = $1", incident) == 1
    assert await db.fetchval('SELECT count(*) FROM dead_letters WHERE "offset" = $1', letter.offset) == 1


async def test_the_incident_record_takes_the_latest_status_even_from_a_late_replay(db):
    incident = f"INC-{uuid.uuid4().hex[:8]}"
    await write_batch(db, Batch(events=[created(incident, f"R-{incident}"), event(incident, 2, "dispatched"),
                                        event(incident, 3, "acknowledged")]))
    # a replay of an older event must not move the record back
    await write_batch(db, Batch(events=[event(incident, 2, "dispatched")]))
    row = await db.fetchrow("SELECT status, last_seq, reporter FROM incidents WHERE incident_id = $1", incident)
    assert (row["status"], row["last_seq"]) == ("acknowledged", 3)
    # personal data of a created event written before reporters travelled apart: in the incident record and
    # beside it (whom to call back), not in the event log
    assert json.loads(row["reporter"]) == {"name": "Li", "phone": "138"}
    assert json.loads(await db.fetchval("SELECT reporter FROM incident_reporters WHERE incident_id = $1",
                                        incident)) == {"name": "Li", "phone": "138"}
    logged = await db.fetchval("SELECT data FROM incident_events WHERE event_id = $1", f"{incident}:1")
    assert "reporter" not in json.loads(logged)


@pytest.mark.parametrize("reporter_first", [True, False])
async def test_the_incident_record_takes_its_reporter_whichever_comes_first(db, reporter_first):
    incident = f"INC-{uuid.uuid4().hex[:8]}"
    writes = [Batch(reporters=[reporter(f"R-{incident}")]), Batch(events=[new_created(incident, f"R-{incident}")])]
    for batch in writes if reporter_first else writes[::-1]:
        await write_batch(db, batch)
        await write_batch(db, batch)  # a replay changes nothing
    assert await _reporter_of(db, incident) == {"name": "Wang Fang", "phone": "13812345678"}


@pytest.mark.parametrize("reporter_first", [True, False])
async def test_two_sinks_writing_an_incident_and_its_reporter_at_once_lose_neither(infrastructure, db,
                                                                                   reporter_first):
    """The reporter record and the created event come on other topics, so two sinks may write them at the same
    moment: whichever commits second must still see the first's rows."""
    import asyncpg

    incident = f"INC-{uuid.uuid4().hex[:8]}"
    writes = [Batch(reporters=[reporter(f"R-{incident}")]), Batch(events=[new_created(incident, f"R-{incident}")])]
    first, second = writes if reporter_first else writes[::-1]
    other = await asyncpg.connect(infrastructure.database_url)
    try:
        # the first sink's batch written and not yet committed (its write_batch is a savepoint of this transaction)
        async with db.transaction(isolation="read_committed"):
            await write_batch(db, first)
            writing = asyncio.create_task(write_batch(other, second))

            async def waiting_or_done():
                state = await db.fetchval("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1",
                                          other.get_server_pid())
                return writing.done() or state == "Lock"

            from tests.streams.conftest import eventually

            await eventually(waiting_or_done, 30, interval=0.05)
        await writing
    finally:
        await other.close()
    assert await _reporter_of(db, incident) == {"name": "Wang Fang", "phone": "13812345678"}


async def test_every_caller_of_an_incident_can_be_called_back(db):
    """The first report's reporter is the incident record's; a merged report's is kept beside it."""
    incident = f"INC-{uuid.uuid4().hex[:8]}"
    merged = event(incident, 2, "report_merged", {"report_id": f"R2-{incident}", "source": "hotline"})
    await write_batch(db, Batch(events=[new_created(incident, f"R-{incident}"), merged],
                                reporters=[reporter(f"R2-{incident}", "Li Lei", "13900001111")]))
    await write_batch(db, Batch(reporters=[reporter(f"R-{incident}")]))
    assert await _reporter_of(db, incident) == {"name": "Wang Fang", "phone": "13812345678"}
    callers = await db.fetch("SELECT report_id, first_report, reporter FROM incident_reporters "
                             "WHERE incident_id = $1 ORDER BY first_report DESC", incident)
    assert [(r["report_id"], r["first_report"], json.loads(r["reporter"])) for r in callers] == [
        (f"R-{incident}", True, {"name": "Wang Fang", "phone": "13812345678"}),
        (f"R2-{incident}", False, {"name": "Li Lei", "phone": "13900001111"})]


@pytest.mark.parametrize("private_first", [True, False])
async def test_the_description_reaches_the_incident_record_and_no_event_whichever_comes_first(db, private_first):
    incident = f"INC-{uuid.uuid4().hex[:8]}"
    told = ReporterRecord(report_id=f"R-{incident}", description="a fight by the noodle shop", received_at=T0)
    writes = [Batch(reporters=[told]), Batch(events=[new_created(incident, f"R-{incident}")])]
    for batch in writes if private_first else writes[::-1]:
        await write_batch(db, batch)
        await write_batch(db, batch)
    assert await db.fetchval("SELECT description FROM incidents WHERE incident_id = $1", incident) == \
        "a fight by the noodle shop"
    # nobody was named: nobody to call back
    assert await db.fetchval("SELECT count(*) FROM incident_reporters WHERE incident_id = $1", incident) == 0


async def test_a_created_event_of_an_earlier_release_leaves_its_description_in_the_record_only(db):
    incident = f"INC-{uuid.uuid4().hex[:8]}"
    old = created(incident, f"R-{incident}")
    old = old.model_copy(update={"data": {**old.data, "description": "call me on 13812345678"}})
    await write_batch(db, Batch(events=[old]))
    assert await db.fetchval("SELECT description FROM incidents WHERE incident_id = $1", incident) == \
        "call me on 13812345678"
    logged = json.loads(await db.fetchval("SELECT data FROM incident_events WHERE event_id = $1", f"{incident}:1"))
    assert "description" not in logged and "reporter" not in logged


async def test_street_performance_counts_limits_met_and_missed(db):
    from datetime import datetime, timezone

    from processors.messages import Escalation

    now = datetime.now(timezone.utc)
    street = f"ST-{uuid.uuid4().hex[:6]}"
    incident = f"INC-{uuid.uuid4().hex[:8]}"
    first = created(incident, f"R-{incident}").with_data(street=street).model_copy(update={"at": now})
    acked = IncidentEvent(schema_version=1, event_id=f"{incident}:2", incident_id=incident, seq=2,
                          type="acknowledged", at=now, data={"unit_id": "U-1", "order_id": "O-1", "ack_on_time": True})
    late = Escalation(schema_version=1, escalation_id=f"{incident}:L2:arrival_overdue", incident_id=incident,
                      level=2, reason="arrival_overdue", deadline=now, at=now, district="JINJIANG", street=street,
                      category="PS-FIGHT")
    await write_batch(db, Batch(events=[first, acked], escalations=[late]))
    row = await db.fetchrow("SELECT * FROM v_street_performance WHERE street = $1", street)
    assert (row["incidents_24h"], row["sla_met_24h"], row["sla_missed_24h"], row["escalations_24h"]) == (1, 1, 1, 1)
    assert row["compliance_24h"] == 0.5


async def test_the_worker_needs_no_more_than_plain_table_rights(infrastructure, db):
    """Migrations run separately with a privileged role; the worker's role only reads and writes rows."""
    import asyncpg

    role = f"patrol_worker_{uuid.uuid4().hex[:6]}"
    await db.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
    await db.execute(f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}")
    try:
        url = infrastructure.database_url.replace("postgresql://postgres@", f"postgresql://{role}@", 1)
        worker_db = await asyncpg.connect(url)
        try:
            assert not await worker_db.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            incident = f"INC-{uuid.uuid4().hex[:8]}"
            await write_batch(worker_db, Batch(events=[new_created(incident, f"R-{incident}"),
                                                       event(incident, 2, "dispatched")]))
            await write_batch(worker_db, Batch(reporters=[reporter(f"R-{incident}")]))
            assert await worker_db.fetchval("SELECT status FROM incidents WHERE incident_id = $1",
                                            incident) == "dispatched"
            assert await _reporter_of(worker_db, incident) == {"name": "Wang Fang", "phone": "13812345678"}
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await worker_db.execute("CREATE TABLE worker_may_not (x int)")
        finally:
            await worker_db.close()
    finally:
        await db.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}")
        await db.execute(f"DROP ROLE {role}")


@pytest.mark.integration
async def test_a_sink_of_its_own_writes_the_audit_trail_and_stops_when_told(second_site, tmp_path):
    """`patrol sink` beside workers that run without one (PATROL_SINK_IN_WORKER=false): what the district
    cores publish lands in PostgreSQL, the sink's figures can be scraped, and SIGTERM ends it cleanly."""
    import asyncio
    import os
    import signal
    import sys

    import asyncpg

    from streams.operations.embedded import free_port, spawn_child, stop_child
    from streams.runtime.topics import INCIDENT_EVENTS
    from tests.streams.conftest import eventually, message, send
    from tests.streams.runtime.test_metrics import scrape, value

    site = second_site.with_overrides(metrics_port=free_port())
    sink = spawn_child([sys.executable, "-m", "streams.cli", "sink"], log=tmp_path / "sink.log",
                       death_signal=signal.SIGTERM, env={**os.environ, **site.to_env()})
    try:
        incident = f"INC-{uuid.uuid4().hex[:8]}"
        await send(site, [message(INCIDENT_EVENTS, incident, e.model_dump(mode="json"))
                          for e in (created(incident, f"R-{incident}"), event(incident, 2, "dispatched"))])
        db = await asyncpg.connect(site.database_url)
        try:
            # the two events may come in one batch or two: the record may show `created` on the way
            await eventually(lambda: _status_is(db, incident, "dispatched"), 60)
        finally:
            await db.close()

        async def counted() -> bool:
            # the sink counts its rows once their transaction is committed, which this process may see first
            rows = await asyncio.to_thread(scrape, site.metrics_port)
            return value(rows["patrol_sink_rows"], "patrol_sink_rows_total", table="incident_events") == 2

        await eventually(counted, 30)
        sink.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(sink.wait, 30) == 0, (tmp_path / "sink.log").read_text()[-2000:]
    finally:
        stop_child(sink, signal.SIGTERM, timeout=10)


@pytest.mark.integration
async def test_a_sink_whose_database_is_down_says_how_long_and_is_alive_until_the_stall_limit(infrastructure, tmp_path):
    """`patrol sink` with its PostgreSQL stopped while an event is in hand: patrol_sink_write_failing_seconds
    rises, /readyz refuses, /healthz answers 200 until the sink has gone without progress for the stall limit and
    then 503 naming it; with the database back, the row lands and all three are as before."""
    import asyncio
    import os
    import signal
    import sys
    import urllib.error

    import asyncpg

    from streams.operations.embedded import EmbeddedDatabase, embedded_broker, free_port, spawn_child, stop_child
    from streams.sink.migrate import migrate
    from streams.runtime.topics import INCIDENT_EVENTS, ensure_topics
    from tests.streams.conftest import eventually, message, send
    from tests.streams.runtime.test_health import get
    from tests.streams.runtime.test_metrics import scrape, value

    stall_s = 15.0
    broker, database = embedded_broker(infrastructure, tmp_path).start(), EmbeddedDatabase(tmp_path).start()
    site = infrastructure.with_overrides(kafka_bootstrap=broker.bootstrap, database_url=database.url,
                                         app_id=f"patrol-sinkdown-{uuid.uuid4().hex[:8]}", data_dir=tmp_path,
                                         metrics_port=free_port(), liveness_stall_s=stall_s)
    sink = None
    try:
        await migrate(site.database_url)
        await ensure_topics(site)
        sink = spawn_child([sys.executable, "-m", "streams.cli", "sink"], log=tmp_path / "sink.log",
                           death_signal=signal.SIGTERM, env={**os.environ, **site.to_env()})

        async def probe(path: str) -> tuple[int, dict]:
            assert sink.poll() is None, (tmp_path / "sink.log").read_text()[-3000:]
            try:
                status, body = await asyncio.to_thread(get, site.metrics_port, path)
            except urllib.error.URLError:
                return 0, {}  # not serving yet
            return status, json.loads(body)

        async def failing_s() -> float:
            families = await asyncio.to_thread(scrape, site.metrics_port)
            return value(families["patrol_sink_write_failing_seconds"], "patrol_sink_write_failing_seconds")

        async def answers(path: str, status: int):
            return (await probe(path))[0] == status

        await eventually(lambda: answers("/readyz", 200), timeout=90)
        assert await failing_s() == 0

        database.pause()
        incident = f"INC-{uuid.uuid4().hex[:8]}"
        first = created(incident, f"R-{incident}")
        await send(site, [message(INCIDENT_EVENTS, incident, first.model_dump(mode="json"))])
        seen: list[tuple[float, int, dict]] = []

        async def stalled():
            failing, (status, body) = await failing_s(), await probe("/healthz")
            seen.append((failing, status, body))
            return status == 503

        await eventually(stalled, timeout=stall_s + 60)
        # while the write failed, the sink was alive as long as its last progress was within the stall limit
        alive_while_failing = [body for failing, status, body in seen if failing > 0 and status == 200]
        assert alive_while_failing, seen
        assert [body for body in alive_while_failing
                if not (body["loops"]["sink"]["has_work"] and body["loops"]["sink"]["since_progress_s"] < stall_s)
                ] == [], (tmp_path / "sink.log").read_text()[-3000:]
        failing, _, body = seen[-1]
        [named] = body["stalled"]
        assert named["loop"] == "sink" and named["since_progress_s"] >= stall_s
        assert failing > 0
        status, readiness = await probe("/readyz")
        assert (status, readiness["reason"]) == (503, "PostgreSQL does not answer the sink")

        database.resume()
        db = await asyncpg.connect(site.database_url)
        try:
            await eventually(lambda: db.fetchval("SELECT status FROM incidents WHERE incident_id = $1", incident),
                             timeout=60)
        finally:
            await db.close()

        async def recovered():
            return (await failing_s() == 0 and await answers("/healthz", 200) and await answers("/readyz", 200))

        await eventually(recovered, timeout=60)
    finally:
        if sink is not None:
            stop_child(sink, signal.SIGTERM, timeout=30)
        broker.stop()
        database.stop()


def test_a_sink_of_its_own_needs_the_broker_and_database_it_joins(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("PATROL_")}
    done = subprocess.run([sys.executable, "-m", "streams.cli", "sink"], capture_output=True, text=True,
                          env={**env, "PATROL_DATA_DIR": str(tmp_path)}, timeout=60)
    assert done.returncode == 2
    assert "PATROL_KAFKA_BOOTSTRAP and PATROL_DATABASE_URL must be set" in done.stderr


@pytest.mark.integration
async def test_a_row_the_database_refuses_is_dead_lettered_and_the_rest_of_its_batch_written(second_site):
    """A message valid to its schema whose row PostgreSQL refuses (here a seq beyond its integer column) must not
    hold the audit trail back for ever: it becomes a dead letter with the reason, its batch-mates become rows."""
    import asyncio

    import asyncpg

    from streams.sink.sink import Sink
    from streams.runtime.topics import INCIDENT_EVENTS
    from tests.streams.conftest import eventually, message, send

    good, bad = f"INC-{uuid.uuid4().hex[:8]}", f"INC-{uuid.uuid4().hex[:8]}"
    refused = event(bad, 3_000_000_000, "dispatched")  # valid: seq ≥ 1; the column is a 32-bit integer
    await send(second_site, [message(INCIDENT_EVENTS, e.incident_id, e.model_dump(mode="json")) for e in
                             (created(good, f"R-{good}"), refused, event(good, 2, "dispatched"))])
    sink = Sink(second_site)
    running = asyncio.create_task(sink.run_forever())
    db = await asyncpg.connect(second_site.database_url)
    try:
        letter = await eventually(lambda: db.fetchrow(
            "SELECT reason, error, raw FROM dead_letters WHERE topic = 'incident.events' AND raw LIKE $1",
            f"%{bad}%"), 60)
        assert letter["reason"] == "sink_refused"
        # what was wrong, where, and not the value (it could have been a reporter's phone)
        assert "query argument $3 (value out of int32 range)" in letter["error"], letter["error"]
        assert "3000000000" not in letter["error"]
        # the good incident's two events may have come in another batch than the refused one
        await eventually(lambda: _status_is(db, good, "dispatched"), 60)
        assert await db.fetchval("SELECT count(*) FROM incident_events WHERE incident_id = $1", bad) == 0
        assert not running.done()  # still writing
    finally:
        sink.stop()
        await asyncio.wait_for(running, 30)
        await db.close()
