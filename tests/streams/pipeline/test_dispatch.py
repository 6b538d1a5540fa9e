"""Dispatch end to end on the real broker: units log on, reports arrive, orders reach the right units,
field events resolve the incidents (which then await verification), and PostgreSQL holds the whole timeline."""

import pytest

from streams.runtime.topics import DISPATCH_ORDERS, UNIT_EVENTS
from tests.streams.conftest import Field, TopicReader, eventually, send

pytestmark = [pytest.mark.integration, pytest.mark.smoke]


async def test_orders_reach_the_right_units_and_field_events_resolve_the_incidents(
        infrastructure, worker, db, isolated_district):
    f = Field(isolated_district)
    here = isolated_district.point()
    units = {
        "police-near": (f"{f.run}-P1", "police", isolated_district.point(east_m=200)),
        "police-far": (f"{f.run}-P2", "police", isolated_district.point(east_m=900)),
        "traffic": (f"{f.run}-T1", "traffic", isolated_district.point(north_m=300)),
        "city": (f"{f.run}-C1", "city_management", isolated_district.point(north_m=-300)),
    }
    await f.log_on_all(infrastructure, db, list(units.values()))
    fight, crowd = f"{f.run}-fight", f"{f.run}-crowd"
    await send(infrastructure, [f.report(fight, "PS-FIGHT", here)])
    unit_ids = {uid for uid, _, _ in units.values()}

    async with TopicReader(infrastructure, DISPATCH_ORDERS, unit_ids) as orders:
        [first] = await orders.wait_for(lambda r: len(r) >= 1)
        assert (first["unit_id"], first["kind"], first["category"]) == (units["police-near"][0], "assign", "PS-FIGHT")

        # the joint category: one unit of each agency, the nearest free police unit now being P2
        await send(infrastructure, [f.report(crowd, "EM-CROWD", isolated_district.point(north_m=100))])
        records = await orders.wait_for(lambda r: len(r) >= 4)
        joint = [o for o in records if o["category"] == "EM-CROWD"]
        assert {o["unit_id"] for o in joint} == {units[k][0] for k in ("police-far", "traffic", "city")}
        for o in joint:
            assert len(o["joint_with"]) == 2

        # field units work their orders to the end
        for o in records:
            for step in ("ack", "en_route", "on_scene", "resolved"):
                await send(infrastructure, [f.status(o["unit_id"], step, o["order_id"])])

    # resolved is not closed: both await the complainant's verification (核查结案), which closes them
    async def both_awaiting():
        rows = await db.fetch("SELECT report_id, status FROM incidents WHERE report_id = ANY($1::text[])",
                              [fight, crowd])
        return rows if len(rows) == 2 and all(r["status"] == "awaiting_verification" for r in rows) else None

    await eventually(both_awaiting)
    timeline = await db.fetch(
        """SELECT e.type FROM incident_events e JOIN incidents i USING (incident_id)
           WHERE i.report_id = $1 ORDER BY e.seq""", fight)
    assert [r["type"] for r in timeline] == [
        "created", "dispatched", "acknowledged", "en_route", "on_scene", "resolved", "awaiting_verification"]
    crowd_types = [r["type"] for r in await db.fetch(
        """SELECT e.type FROM incident_events e JOIN incidents i USING (incident_id)
           WHERE i.report_id = $1 ORDER BY e.seq""", crowd)]
    assert crowd_types.count("resolved") == 3 and crowd_types[-1] == "awaiting_verification"
    # the orders reach PostgreSQL from a topic of their own, on the sink's own schedule: waited for, not assumed
    await eventually(lambda: _count_is(db, "SELECT count(*) FROM dispatch_orders WHERE unit_id = ANY($1::text[])",
                                       list(unit_ids), 4))
    worker.assert_alive()


async def test_a_status_for_an_order_the_unit_does_not_hold_is_dead_lettered(
        infrastructure, worker, db, isolated_district):
    f = Field(isolated_district)
    holder, other = f"{f.run}-P1", f"{f.run}-P2"
    await f.log_on_all(infrastructure, db, [(holder, "police", isolated_district.point(east_m=100)),
                                           (other, "police", isolated_district.point(east_m=5000))])
    await send(infrastructure, [f.report(f"{f.run}-r", "PS-FIGHT", isolated_district.point())])
    async with TopicReader(infrastructure, DISPATCH_ORDERS, {holder}) as orders:
        [order] = await orders.wait_for(lambda r: len(r) >= 1)
    # the incident record shows the dispatch before the stray status is sent, so that what is checked after
    # it is what the status left, not how far the sink had got
    await eventually(lambda: _status_is(db, f"{f.run}-r", "dispatched"))
    await send(infrastructure, [f.status(other, "on_scene", order["order_id"])])

    async def letter():
        return await db.fetchrow("SELECT * FROM dead_letters WHERE key = $1 AND reason = 'unit_not_assigned' "
                                 "AND error LIKE $2", other, f"%{order['order_id']}%")

    row = await eventually(letter)
    assert order["order_id"] in row["error"] and row["topic"] == UNIT_EVENTS
    incident = await db.fetchrow("SELECT status FROM incidents WHERE report_id = $1", f"{f.run}-r")
    assert incident["status"] == "dispatched"


async def _count_is(db, sql: str, arg, n: int) -> bool:
    return await db.fetchval(sql, arg) == n


async def _status_is(db, report_id: str, status: str) -> bool:
    return await db.fetchval("SELECT status FROM incidents WHERE report_id = $1", report_id) == status
