"""Streaming reports at a site under a fault, and checking afterwards that each was accounted for exactly once:
the shared part of the fault tests (test_reliability.py, test_broker_failover.py)."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.runtime.consumer_loop import partitions_of
from streams.operations.publish import Outgoing
from streams.settings import Settings
from streams.runtime.topics import DISPATCH_ORDERS


def unit_log_on(run: str, d, i: int, rnd: random.Random) -> Outgoing:
    unit_id = f"{run}-{d.district}-U{i}"
    doc = {"schema_version": 1, "event_id": f"{unit_id}-on", "unit_id": unit_id, "at": "2026-11-25T08:00:00Z",
           "type": "log_on", "agency": "city_management", "kind": "auxiliary", "district": d.district,
           "home_street": d.streets[0], "mode": "bike", "lat": d.lat + rnd.uniform(-0.009, 0.009),
           "lon": d.lon + rnd.uniform(-0.009, 0.009)}
    return Outgoing("unit.events", unit_id.encode(), json.dumps(doc).encode())


def report(run: str, d, i: int) -> Outgoing:
    # a 100 m grid: no two reports are close enough to be merged as the same matter
    north, east = (i // 16 - 8) * 100, (i % 16 - 8) * 100
    lat, lon = d.point(north_m=north, east_m=east)
    report_id = f"{run}-{d.district}-R{i}"
    doc = {"schema_version": 1, "report_id": report_id, "source": "sensor", "category": "CM-FLYPOST",
           "lat": lat, "lon": lon, "reported_at": "2026-11-25T08:00:00Z"}
    return Outgoing("incident.reports", report_id.encode(), json.dumps(doc).encode())


async def accounted(db, run: str) -> int:
    """The run's reports that became an incident, a dead letter or a merge into another incident."""
    return await db.fetchval(
        """SELECT (SELECT count(*) FROM incidents WHERE report_id LIKE $1)
                + (SELECT count(*) FROM dead_letters WHERE key LIKE $1)
                + (SELECT count(*) FROM incident_events WHERE type = 'report_merged'
                   AND data->>'report_id' LIKE $1)""", f"{run}-%")


async def dispatched(db, run: str) -> int:
    return await db.fetchval("SELECT count(*) FROM incidents WHERE report_id LIKE $1 AND status = 'dispatched'",
                             f"{run}-%")


async def assert_each_report_once(db, run: str, total: int) -> None:
    """Nothing lost, nothing doubled: every report accounted for once, exactly one effective order per incident
    and at most one per unit, and every incident's event sequence gap-free and single."""
    assert await accounted(db, run) == total
    per_incident = await db.fetch(
        """SELECT incident_id, count(*) FILTER (WHERE kind = 'assign') - count(*) FILTER (WHERE kind = 'cancel') AS n
           FROM dispatch_orders WHERE unit_id LIKE $1 GROUP BY incident_id""", f"{run}-%")
    assert len(per_incident) == total and {r["n"] for r in per_incident} == {1}
    per_unit = await db.fetch(
        """SELECT unit_id, count(*) FILTER (WHERE kind = 'assign') - count(*) FILTER (WHERE kind = 'cancel') AS n
           FROM dispatch_orders WHERE unit_id LIKE $1 GROUP BY unit_id""", f"{run}-%")
    assert max(r["n"] for r in per_unit) == 1
    gaps = await db.fetchval(
        """SELECT count(*) FROM (SELECT incident_id, max(seq) AS top, count(*) AS n FROM incident_events
           WHERE incident_id IN (SELECT incident_id FROM incidents WHERE report_id LIKE $1)
           GROUP BY incident_id) t WHERE top <> n""", f"{run}-%")
    assert gaps == 0


async def stream(settings: Settings, messages: list[Outgoing], chunks: int, pause_s: float,
                 gates: dict[int, asyncio.Event] | None = None) -> None:
    """Send `messages` in `chunks` a pause apart through one producer, as our clients are configured; before
    chunk i, wait for gates[i] if there is one (the rest of the stream comes after a fault, whenever it strikes)."""
    gates = gates or {}
    size = -(-len(messages) // chunks)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5,
                                **settings.producer_options())
    await producer.start()
    try:
        pending = []
        for i in range(chunks):
            if i in gates:
                await gates[i].wait()
            for m in messages[i * size:(i + 1) * size]:
                pending.append(await producer.send(m.topic, m.value, key=m.key))
            await asyncio.sleep(pause_s)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


@dataclass(frozen=True)
class OrderRecord:
    """An order as it is on dispatch.orders: its document, and when the worker sent it (the record's CreateTime,
    the producer's clock: this machine's)."""

    doc: dict
    sent_at: float


async def orders_on_topic(settings: Settings, run: str, until) -> list[OrderRecord]:
    """The run's records on dispatch.orders (keyed by unit, the run's units' ids start with `run`), read from the
    beginning without a consumer group until `until(records)` holds."""
    from tests.streams.conftest import eventually

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                                fetch_max_wait_ms=settings.fetch_max_wait_ms, **settings.kafka_client_options())
    await consumer.start()
    records: list[OrderRecord] = []
    try:
        tps = await partitions_of(consumer, DISPATCH_ORDERS)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)

        async def read() -> bool:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(OrderRecord(json.loads(r.value), r.timestamp / 1000) for r in batch
                               if r.key is not None and r.key.decode().startswith(f"{run}-"))
            return until(records)

        await eventually(read, timeout=120, interval=0)
    finally:
        await consumer.stop()
    return records


def longest_pause(times: list[float], since: float) -> tuple[float, float]:
    """Of the gaps between consecutive `times` from the last one before `since` on: the longest, as (its
    length, how long after `since` it ended)."""
    ordered = sorted(times)
    before = [t for t in ordered if t < since]
    after = [t for t in ordered if t >= since]
    stretch = before[-1:] + after
    if len(stretch) < 2:
        return 0.0, 0.0
    start, end = max(zip(stretch, stretch[1:]), key=lambda gap: gap[1] - gap[0])
    return end - start, end - since
