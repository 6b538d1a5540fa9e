"""SLA breaches on the real broker, with a catalogue of second-scale limits (XT-FAST: ack 3 s, arrive 8 s, resolve 20 s)."""

from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from streams.runtime.topics import DISPATCH_ORDERS, SLA_ESCALATIONS, worklog_topic
from tests.streams.conftest import Field, TopicReader, WorkerProcess, eventually, send

pytestmark = [pytest.mark.integration, pytest.mark.smoke]

LADDER = [(1, "ack_overdue"), (2, "arrival_overdue"), (2, "no_eligible_unit"), (3, "no_eligible_unit"),
          (3, "resolve_overdue")]


async def test_a_unit_that_never_acknowledges_is_replaced_within_the_limit_plus_one_tick(
        infrastructure, worker, db, isolated_district):
    f = Field(isolated_district)
    silent, next_best = f"{f.run}-P1", f"{f.run}-P2"
    await f.log_on_all(infrastructure, db, [(silent, "police", isolated_district.point(east_m=100)),
                                           (next_best, "police", isolated_district.point(east_m=900))])
    await send(infrastructure, [f.report(f"{f.run}-r", "XT-FAST", isolated_district.point())])
    async with TopicReader(infrastructure, DISPATCH_ORDERS, {silent, next_best}) as orders:
        [first] = await orders.wait_for(lambda r: len(r) >= 1)
        assert first["unit_id"] == silent
        records = await orders.wait_for(lambda r: len(r) >= 3, timeout=30)
    # orders are keyed by unit, so only each unit's own orders are in sequence
    assert [o["kind"] for o in records if o["unit_id"] == silent][:2] == ["assign", "cancel"]
    assert [o["kind"] for o in records if o["unit_id"] == next_best][:1] == ["assign"]

    async with TopicReader(infrastructure, SLA_ESCALATIONS, {first["incident_id"]}) as escalations:
        [level_one] = await escalations.wait_for(lambda r: len(r) >= 1, timeout=30)
    assert (level_one["level"], level_one["reason"]) == (1, "ack_overdue")
    ack_by = datetime.fromisoformat(first["ack_by"])
    assert datetime.fromisoformat(level_one["deadline"]) == ack_by
    # Noticed at the first entry of the district's work log past the deadline (a clock tick): by the log's
    # own times, not by how soon a busy machine got round to the tick, which no test can promise.
    async with TopicReader(infrastructure, worklog_topic(infrastructure), {isolated_district.district}) as log:
        entries = await log.wait_for(lambda r: any(datetime.fromisoformat(e["at"]) >= ack_by for e in r))
    first_past = next(e for e in entries if datetime.fromisoformat(e["at"]) >= ack_by)
    assert first_past["kind"] == "tick"
    assert datetime.fromisoformat(level_one["at"]) == datetime.fromisoformat(first_past["at"])

    row = await eventually(lambda: db.fetchrow("SELECT * FROM escalations WHERE escalation_id = $1",
                                               level_one["escalation_id"]))
    assert row["street"] == isolated_district.streets[0] and row["category"] == "XT-FAST"


async def test_a_worker_killed_before_the_deadline_escalates_exactly_once_after_restart(second_site, isolated_district):
    site = second_site
    log = Path(site.data_dir) / "worker.log"
    f = Field(isolated_district)
    unit = f"{f.run}-P1"
    first = WorkerProcess(site, log).start()
    db = await asyncpg.connect(site.database_url)
    try:
        await f.log_on_all(site, db, [(unit, "police", isolated_district.point(east_m=100))])
        await send(site, [f.report(f"{f.run}-r", "XT-FAST", isolated_district.point())])
        order = await eventually(lambda: db.fetchrow("SELECT * FROM dispatch_orders WHERE unit_id = $1", unit))
        # the deadline is set (the order is out) and has not fallen due: crash now
        first.kill()
        assert datetime.now(order["ack_by"].tzinfo) < order["ack_by"], "too slow to crash before the deadline"

        second = WorkerProcess(site, log).start()
        try:
            async def ladder_complete():
                rows = await db.fetch("SELECT level, reason FROM escalations WHERE incident_id = $1",
                                      order["incident_id"])
                return rows if len(rows) >= len(LADDER) else None

            # every limit falls due while it is down or restarting: the silent unit is taken off (level 1),
            # nobody else can come (levels 2 and 3), nobody arrives (2), nothing is resolved (3)
            try:
                await eventually(ladder_complete, timeout=120)
            except AssertionError:
                rows = await db.fetch("SELECT level, reason, at FROM escalations WHERE incident_id = $1",
                                      order["incident_id"])
                events = await db.fetch("SELECT seq, type, at FROM incident_events WHERE incident_id = $1 ORDER BY seq",
                                        order["incident_id"])
                raise AssertionError(f"escalations {rows}; events {events}")
            await eventually(lambda: _seconds_of_ticks(db, order["incident_id"]), timeout=30)
            rows = await db.fetch("SELECT level, reason FROM escalations WHERE incident_id = $1", order["incident_id"])
            assert sorted((r["level"], r["reason"]) for r in rows) == LADDER
            async with TopicReader(site, SLA_ESCALATIONS, {order["incident_id"]}) as topic:
                published = await topic.wait_for(lambda r: len(r) >= len(LADDER))
            assert sorted((e["level"], e["reason"]) for e in published) == LADDER, "published twice or missing"
            second.assert_alive()
        finally:
            second.stop()
    finally:
        await db.close()
        if first.process.poll() is None:
            first.stop()


async def _seconds_of_ticks(db, incident_id: str) -> bool:
    """True once the live clock has run well past the last escalation (so a duplicate would have shown)."""
    last = await db.fetchval("SELECT max(at) FROM escalations WHERE incident_id = $1", incident_id)
    return last is not None and datetime.now(last.tzinfo) - last > timedelta(seconds=5)
