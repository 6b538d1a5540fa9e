"""Hostile input through the real worker: thousands of generated messages; the worker never stops, every bad one
is dead-lettered with a reason, the good ones in between are processed — exactly as the pure intake rules say."""

import asyncio
import json
import math
import uuid
from datetime import datetime, timezone

import asyncpg
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from processors.intake import Inbound, Limits, Rejected, admit_report
from streams.operations.publish import Outgoing, publish
from streams.reference import load_catalogue, load_geography
from tests.streams.conftest import eventually, fresh_district

# Against a live worker, shrinking a failure would replay it dozens of times for minutes:
# a failing example is reported as generated instead.
LIVE = {"deadline": None, "suppress_health_check": list(HealthCheck),
        "phases": [Phase.explicit, Phase.reuse, Phase.generate]}

pytestmark = pytest.mark.integration

GOOD = {"schema_version": 1, "source": "sensor", "category": "CM-GARBAGE", "reported_at": "2026-11-25T07:00:00Z"}

json_value = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=3), max_leaves=8)
mutation = st.one_of(
    st.tuples(st.just("drop"), st.sampled_from(["report_id", "source", "category", "lat", "lon", "reported_at",
                                                "schema_version"])),
    st.tuples(st.just("set"), st.sampled_from(["source", "category", "lat", "lon", "reported_at", "confidence",
                                               "description", "reporter", "attributes"]), json_value),
    st.tuples(st.just("coords"), st.sampled_from([(91.0, 104.0), (30.6, 181.0), (39.9, 116.4), (-30.6, -104.0)])),
    st.tuples(st.just("huge"), st.integers(5_000, 120_000)),
    st.tuples(st.just("nan"), st.sampled_from(["lat", "lon", "confidence"])),
    st.tuples(st.just("bytes"), st.binary(max_size=200)),
    st.tuples(st.just("good"), st.just(None)),
)


def render(doc: dict, op) -> bytes:
    kind, arg = op[0], op[1] if len(op) > 1 else None
    doc = dict(doc)
    if kind == "drop":
        doc.pop(arg)
    elif kind == "set":
        doc[arg] = op[2]
    elif kind == "coords":
        doc["lat"], doc["lon"] = arg
    elif kind == "huge":
        doc["description"] = "x" * arg
    elif kind == "bytes":
        return arg
    raw = json.dumps(doc, allow_nan=True)
    if kind == "nan":
        raw = raw.replace(json.dumps(doc.get(arg, 0.5)), "NaN", 1) if arg in doc else raw[:-1] + f', "{arg}": NaN}}'
    return raw.encode()


@settings(max_examples=4, **LIVE)
@given(batch=st.lists(mutation, min_size=300, max_size=500))
def test_generated_hostile_reports_never_stop_the_worker(batch, infrastructure, worker):
    isolated_district = fresh_district()
    catalogue, geography = load_catalogue(infrastructure), load_geography(infrastructure)
    run = uuid.uuid4().hex[:8]
    lat, lon = isolated_district.point()
    messages, good_ids, bad_keys = [], set(), set()
    for n, op in enumerate(batch):
        key = f"{run}-{n}"
        doc = {**GOOD, "report_id": key, "lat": lat + (n % 50) * 0.0002, "lon": lon + (n // 50) * 0.0002}
        raw = render(doc, op)
        # the oracle: the same pure rules the worker runs (the clock only matters for reported_at)
        verdict = admit_report(Inbound("incident.reports", 0, n, key.encode(), raw, datetime.now(timezone.utc)),
                               catalogue, geography, Limits(max_bytes=infrastructure.max_report_bytes))
        if isinstance(verdict, Rejected):
            bad_keys.add(key)
        else:
            good_ids.add(verdict.item.report.report_id)
        messages.append(Outgoing("incident.reports", key.encode(), raw))
        if op[0] == "good" and n % 7 == 0:
            messages.append(Outgoing("incident.reports", key.encode(), raw))  # a resend in between
    asyncio.run(_deliver_and_check(infrastructure, messages, good_ids, bad_keys, run))
    worker.assert_alive()


async def _deliver_and_check(site, messages, good_ids, bad_keys, run):
    await publish(site, messages)
    db = await asyncpg.connect(site.database_url)
    try:
        async def settled():
            letters = await db.fetch("SELECT key, reason FROM dead_letters WHERE key LIKE $1", f"{run}-%")
            return letters if len(letters) >= len(bad_keys) and await accounted() >= len(good_ids) else None

        async def accounted() -> int:
            # a good report is an incident of its own, or merged into a nearby one of the same matter
            return await db.fetchval(
                """SELECT (SELECT count(*) FROM incidents WHERE report_id = ANY($1::text[]))
                        + (SELECT count(*) FROM incident_events WHERE type = 'report_merged'
                           AND data->>'report_id' = ANY($1::text[]))""", list(good_ids))

        letters = await eventually(settled, timeout=120)
        assert {r["key"] for r in letters} == bad_keys, "dead letters differ from what the intake rules say"
        assert all(r["reason"] and r["reason"] != "processing_error" for r in letters)
        assert await accounted() == len(good_ids)
    finally:
        await db.close()


def test_the_nan_helper_really_writes_nan():
    assert math.isnan(json.loads(render({**GOOD, "lat": 1.0}, ("nan", "lat")))["lat"])


unit_step = st.tuples(
    st.sampled_from(["ack", "en_route", "on_scene", "resolved", "decline", "location", "available", "unavailable"]),
    st.sampled_from(["holder", "stranger"]),
    st.sampled_from(["held", "made_up"]),
)


@settings(max_examples=3, **LIVE)
@given(steps=st.lists(unit_step, min_size=20, max_size=60))
def test_unit_events_for_unknown_units_and_orders_are_dead_lettered_in_order(steps, infrastructure, worker):
    """The worker's verdicts on field events match the pure core's, event by event, whatever the order."""
    isolated_district = fresh_district()
    from tests.processors.scenario import Scenario
    from tests.streams.conftest import Field

    f = Field(isolated_district)
    holder, stranger = f"{f.run}-P1", f"{f.run}-GHOST"
    point = isolated_district.point(east_m=100)
    twin = Scenario(load_catalogue(infrastructure), load_geography(infrastructure), isolated_district.district)
    twin.log_on(holder, "police", *point, street=isolated_district.streets[0])
    twin.report(f"{f.run}-r", "PS-NOISE", *isolated_district.point())
    order_id = twin.order_of(holder)

    async def scenario():
        db = await asyncpg.connect(infrastructure.database_url)
        try:
            await f.log_on_all(infrastructure, db, [(holder, "police", point)])
            await publish(infrastructure, [f.report(f"{f.run}-r", "PS-NOISE", isolated_district.point())])
            await eventually(lambda: db.fetchval("SELECT count(*) FROM dispatch_orders WHERE order_id = $1",
                                                 order_id))
            expected_letters, messages = [], []
            for type_, who, which in steps:
                unit = holder if who == "holder" else stranger
                extra = ({"order_id": order_id if which == "held" else f"{f.run}-O9"}
                         if type_ in ("ack", "en_route", "on_scene", "resolved", "decline") else {})
                if type_ == "location":
                    extra = {"lat": point[0], "lon": point[1]}
                before = len(twin.dead_letters())
                if unit == holder:
                    twin.unit_event(unit, type_, **extra)
                    if len(twin.dead_letters()) > before:
                        expected_letters.append(twin.dead_letters()[-1].reason)
                else:
                    expected_letters.append("unknown_unit")  # intake: this unit never logged on
                messages.append(f._event(unit, type_, **extra))
            await publish(infrastructure, messages)

            async def letters():
                rows = await db.fetch("SELECT reason FROM dead_letters WHERE key = ANY($1::text[]) "
                                      "AND reason IN ('unknown_unit', 'unit_not_assigned')", [holder, stranger])
                # the log-on barrier left one unit_not_assigned of its own
                return rows if len(rows) >= len(expected_letters) + 1 else None

            rows = await eventually(letters, timeout=60)
            assert sorted(r["reason"] for r in rows) == sorted(expected_letters + ["unit_not_assigned"])
            # the incident record follows the sink's projection of the twin's events
            from streams.sink.sink import STATUS_AFTER

            twin_status = [STATUS_AFTER[e.type] for e in twin.events(incident_id=twin.incident_of(f"{f.run}-r"))
                           if e.type in STATUS_AFTER][-1]
            await eventually(lambda: _status_is(db, f"{f.run}-r", twin_status), timeout=30)
        finally:
            await db.close()

    asyncio.run(scenario())
    worker.assert_alive()


async def _status_is(db, report_id: str, status: str) -> bool:
    return await db.fetchval("SELECT status FROM incidents WHERE report_id = $1", report_id) == status
