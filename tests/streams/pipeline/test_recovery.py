"""Bounded recovery through real workers: a district's clock ticks only when its deadlines are due, and a worker
taking a district over after a crash restores the owner's snapshot and replays only what came after it."""

import asyncio
import re
import time
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest

from streams.operations.publish import publish
from streams.runtime.topics import worklog_topic
from tests.streams.conftest import Field, TopicReader, WorkerProcess, _isolated, eventually, fresh_district, send

pytestmark = pytest.mark.integration


async def test_a_district_is_ticked_when_a_deadline_is_due_not_every_second(infrastructure, worker, db):
    district = fresh_district()
    field = Field(district)
    unit = f"U-{field.run}"
    await field.log_on_all(infrastructure, db, [(unit, "police", district.point())])
    report_id = f"R-{field.run}"
    started = time.monotonic()
    # XT-FAST: acknowledge in 3 s, arrive in 8 s, resolve in 20 s; the unit never answers
    await send(infrastructure, [field.report(report_id, "XT-FAST", district.point(north_m=100))])

    async def resolve_overdue():
        return await db.fetchval(
            """SELECT count(*) FROM escalations e JOIN incidents i USING (incident_id)
               WHERE i.report_id = $1 AND e.reason = 'resolve_overdue'""", report_id)

    await eventually(resolve_overdue, timeout=120)
    watched_s = time.monotonic() - started
    async with TopicReader(infrastructure, worklog_topic(infrastructure), {district.district}) as reader:
        entries = await reader.wait_for(lambda records: any(r.get("report", {}).get("report_id") == report_id
                                                            for r in records))
    ticks = [datetime.fromisoformat(e["at"]) for e in entries if e["kind"] == "tick"]
    # every second for ~20 s would be 20 ticks and more; the deadlines (acknowledge, the ladder for nobody on it,
    # arrive, resolve) are a handful, each ticked once (twice if the next round comes before the first is taken)
    assert 3 <= len(ticks) <= 12, (len(ticks), watched_s)


def recovered(log: Path) -> list[dict]:
    """The worker's "district state recovered" lines, as key=value pairs."""
    return [dict(re.findall(r"(\w+)=(\S+)", line)) for line in log.read_text(errors="replace").splitlines()
            if "district state recovered" in line]


async def test_a_worker_taking_over_restores_the_snapshot_and_replays_only_what_followed(second_site):
    # snapshots every 2 s, so that the owner has taken one before the crash
    site = second_site.with_overrides(snapshot_interval_s=2.0, worklog_retention_s=60.0)
    district = _isolated(0)
    field = Field(district)
    first = WorkerProcess(site, Path(site.data_dir) / "owner.log").start()
    db = await asyncpg.connect(site.database_url)
    second = None
    try:
        units = [(f"U{i}-{field.run}", "city_management", district.point(east_m=200 * i)) for i in range(2)]
        await field.log_on_all(site, db, units)
        # U0 takes the first report (nearest); many more entries come before the snapshot than after it
        await publish(site, [field.report(f"R0-{field.run}", "CM-GARBAGE", district.point(north_m=10))])
        await eventually(lambda: _order_to(db, f"R0-{field.run}", units[0][0]))
        await publish(site, [field.status(units[1][0], "ack", f"nothing-{i}") for i in range(40)])

        async def all_dead_lettered():
            return await db.fetchval("SELECT count(*) FROM dead_letters WHERE key = $1 AND error LIKE '%nothing-%'",
                                     units[1][0]) == 40

        await eventually(all_dead_lettered)
        # a snapshot stored after the 40 were decided (the one before them, if any, is already counted)
        stored = _snapshots_stored(first.log)
        await eventually(lambda: asyncio.to_thread(lambda: _snapshots_stored(first.log) > stored))
        first.kill()
        second = WorkerProcess(site, Path(site.data_dir) / "successor.log").start()
        # a report nearer U0 (and too far from the first to be another call about it): the successor knows U0 is
        # busy (restored), so it sends U1
        await publish(site, [field.report(f"R1-{field.run}", "CM-GARBAGE", district.point(north_m=-100))])
        await eventually(lambda: _order_to(db, f"R1-{field.run}", units[1][0]), timeout=180)
        lines = await eventually(lambda: asyncio.to_thread(_recovered_with_snapshot, second.log))
        # the snapshot came after the 40 dead-lettered entries: the successor replays fewer than those
        assert all(int(line["replayed"]) < 40 for line in lines), lines
        second.assert_alive()
    finally:
        await db.close()
        for w in (first, second):
            if w is not None and w.process.poll() is None:
                w.stop()


def _snapshots_stored(log: Path) -> int:
    return log.read_text(errors="replace").count("district snapshot stored")


def _recovered_with_snapshot(log: Path) -> list[dict] | None:
    lines = [line for line in recovered(log) if line.get("snapshot_at") not in (None, "None")]
    return lines or None


async def _order_to(db, report_id: str, unit_id: str) -> bool:
    return bool(await db.fetchval(
        """SELECT count(*) FROM dispatch_orders o JOIN incidents i USING (incident_id)
           WHERE i.report_id = $1 AND o.unit_id = $2 AND o.kind = 'assign'""", report_id, unit_id))

