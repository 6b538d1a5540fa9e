"""No single message stops dispatch: hostile blobs on every topic the worker and the sink consume, through the real
worker and broker, interleaved with good reports. Every good report becomes an incident, every blob a dead letter
(found by its topic, partition and offset), and no loop restarts."""

import asyncio
import urllib.request
import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from streams.runtime.topics import (
    DISPATCH_ORDERS,
    INCIDENT_EVENTS,
    INCIDENT_REPORTS,
    INCIDENT_REPORTS_DLQ,
    SLA_ESCALATIONS,
    UNIT_EVENTS,
    reporters_topic,
    worklog_topic,
)
from tests.streams.conftest import Field, eventually, fresh_district

pytestmark = pytest.mark.integration

LIVE = {"deadline": None, "suppress_health_check": list(HealthCheck),
        "phases": [Phase.explicit, Phase.reuse, Phase.generate]}

# the producer's default limit on one request is 1 MiB (and the broker's on a record about as much): blobs reach
# just below it, with room for the record's own overhead
LARGEST = 1_000_000


def _repeated(piece_and_size) -> bytes:
    piece, size = piece_and_size
    return (piece * (size // len(piece) + 1))[:size]


blobs = st.one_of(
    st.integers(201, LARGEST).map(lambda n: b"[" * n),  # nesting past any parser's limit
    st.integers(100, LARGEST // 6).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.tuples(st.binary(min_size=1, max_size=16), st.integers(1, LARGEST)).map(_repeated),  # any size
    st.binary(max_size=512).map(lambda b: b"\xff\xfe" + b),  # not UTF-8
    st.integers(400, 20_000).map(lambda n: b'{"schema_version": 1, "lat": 1' + b"0" * n + b"}"),  # huge numbers
    st.sampled_from([b'{"schema_version": 1e400}', b'{"schema_version": 1, "report_id": "\\ud800"}',
                     b'{"schema_version": 1, "kind": "tick", "district": null}', b"", None]),
    st.integers(1, LARGEST).map(lambda n: _repeated((bytes(range(32)), n))),  # control bytes
)


def consumed_topics(infrastructure) -> list[str]:
    """Every topic a worker or the sink consumes record by record."""
    return [INCIDENT_REPORTS, UNIT_EVENTS, worklog_topic(infrastructure), INCIDENT_EVENTS, DISPATCH_ORDERS,
            SLA_ESCALATIONS, INCIDENT_REPORTS_DLQ, reporters_topic(infrastructure)]


def restarts(worker) -> float:
    """patrol_loop_restarts_total of the worker's loops (the district pipeline and the sink), summed."""
    exposition = asyncio.run(eventually(lambda: _exposition(worker)))
    counts = [float(line.rsplit(" ", 1)[1]) for line in exposition.splitlines()
              if line.startswith("patrol_loop_restarts_total{")]
    assert counts, "the worker exports no patrol_loop_restarts_total"
    return sum(counts)


async def _exposition(worker) -> str | None:
    try:
        url = f"http://127.0.0.1:{worker.settings.metrics_port}/metrics"
        with await asyncio.to_thread(urllib.request.urlopen, url, timeout=30) as response:
            return response.read().decode()
    except OSError:
        return None  # not serving yet: the worker is starting


# the two messages that stopped dispatch before, on every topic; and the largest blob the broker takes, on each
@example(stream=[(t, b"[" * 50_000) for t in range(8)] + [(t, _repeated((bytes(range(32)), 180_000))) for t in range(8)])
@example(stream=[(t, _repeated((b"\xff{[", LARGEST))) for t in range(8)])
@settings(max_examples=4, **LIVE)
@given(stream=st.lists(st.tuples(st.integers(0, 7), blobs), min_size=4, max_size=10))
def test_hostile_blobs_on_every_consumed_topic_never_stop_dispatch(stream, infrastructure, worker):
    district = fresh_district()
    topics = consumed_topics(infrastructure)
    restarts_before = restarts(worker)
    run = uuid.uuid4().hex[:8]
    field = Field(district)

    def spot(n: int):
        # 150 m apart: further than the category's duplicate radius, so that each good report is an incident
        return district.point(north_m=(n % 4) * 150 - 300, east_m=(n // 4) * 150 - 300)

    async def scenario():
        producer = AIOKafkaProducer(bootstrap_servers=infrastructure.kafka_bootstrap, acks="all",
                                    max_request_size=LARGEST + 64 * 1024, **infrastructure.kafka_client_options())
        await producer.start()
        blobs_at, good = [], []
        try:
            for n, (which, blob) in enumerate(stream):
                report_id = f"{run}-good-{n}"
                good.append(report_id)
                # a good report before each blob, and one after the last
                await producer.send_and_wait(INCIDENT_REPORTS, field.report(report_id, "CM-GARBAGE", spot(n)).value,
                                             key=report_id.encode())
                placed = await producer.send_and_wait(topics[which], blob, key=f"{run}-blob-{n}".encode())
                blobs_at.append((placed.topic, placed.partition, placed.offset))
            good.append(f"{run}-good-last")
            await producer.send_and_wait(INCIDENT_REPORTS, field.report(good[-1], "CM-GARBAGE", spot(len(stream))).value,
                                         key=good[-1].encode())
        finally:
            await producer.stop()

        db = await asyncpg.connect(infrastructure.database_url)
        try:
            async def every_blob_dead_lettered():
                rows = await db.fetch(
                    """SELECT topic, "partition", "offset", reason, raw_length FROM dead_letters
                       WHERE (topic, "partition", "offset") IN (SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[]))""",
                    [t for t, _, _ in blobs_at], [p for _, p, _ in blobs_at], [o for _, _, o in blobs_at])
                return rows if len(rows) == len(blobs_at) else None

            async def every_good_report_an_incident():
                n = await db.fetchval("SELECT count(*) FROM incidents WHERE report_id = ANY($1::text[])", good)
                return n == len(good)

            await eventually(every_good_report_an_incident, timeout=180)
            letters = await eventually(every_blob_dead_lettered, timeout=180)
        finally:
            await db.close()
        lengths = {(r["topic"], r["partition"], r["offset"]): r["raw_length"] for r in letters}
        for (which, blob), at in zip(stream, blobs_at):
            if lengths[at] is not None:  # a bare dead letter (its record's outputs refused) says no length
                assert lengths[at] == len(blob or b""), (topics[which], at)

    asyncio.run(scenario())
    worker.assert_alive()
    assert restarts(worker) == restarts_before, worker.log.read_text(errors="replace")[-3000:]
