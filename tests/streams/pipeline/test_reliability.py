"""Faults that happen in production, on the real broker and PostgreSQL: nothing lost, nothing doubled."""

import asyncio
import random
import time
import uuid
from pathlib import Path

import asyncpg
import pytest

from streams.operations.publish import publish
from tests.streams.accounting import accounted, assert_each_report_once, report, unit_log_on
from tests.streams.conftest import WorkerProcess, _isolated, eventually

pytestmark = pytest.mark.integration

# districts of their own on the second site's broker, spread over the work-log partitions
DISTRICTS = [_isolated(i) for i in range(6)]


async def test_a_worker_killed_mid_stream_loses_nothing_and_doubles_nothing(second_site, capsys):
    site = second_site
    run = uuid.uuid4().hex[:6]
    rnd = random.Random(7)
    per_district = 250
    workers = [WorkerProcess(site, Path(site.data_dir) / f"worker-{n}.log").start() for n in ("a", "b")]
    db = await asyncpg.connect(site.database_url)
    try:
        await publish(site, [unit_log_on(run, d, i, rnd) for d in DISTRICTS for i in range(per_district)])
        reports = [report(run, d, i) for i in range(per_district) for d in DISTRICTS]
        total = len(reports)

        # the first third, then a crash while the rest streams in
        await publish(site, reports[: total // 3])
        await eventually(lambda: _at_least(lambda: accounted(db, run), total // 6), timeout=120)
        sender = asyncio.create_task(_trickle(site, reports[total // 3:], seconds=8))
        await asyncio.sleep(2)
        workers[0].kill()
        killed_at = time.monotonic()
        await sender

        async def all_dispatched():
            n = await db.fetchval("SELECT count(*) FROM incidents WHERE report_id LIKE $1 AND status = 'dispatched'",
                                  f"{run}-%")
            return n == total

        await eventually(lambda: _at_least(lambda: accounted(db, run), total), timeout=180)
        recovered = time.monotonic() - killed_at
        await eventually(all_dispatched, timeout=60)

        # every report once, exactly one effective order per incident and none doubled, gap-free audit trails
        await assert_each_report_once(db, run, total)
        workers[1].assert_alive()
        # the survivor rebuilt the partitions the killed worker had owned, and carried on with them
        taken_over = _partitions_rebuilt(workers[1].log)
        assert taken_over and _partitions_rebuilt(workers[0].log) <= taken_over
        with capsys.disabled():
            print(f"\n[worker crash] {total} reports, {per_district * len(DISTRICTS)} units: "
                  f"all accounted for {recovered:.1f} s after the SIGKILL; survivor took over")
    finally:
        await db.close()
        for w in workers:
            if w.process.poll() is None:
                w.stop()


def _partitions_rebuilt(log: Path) -> set[str]:
    return {line.split("partition=")[1].split()[0] for line in log.read_text().splitlines()
            if "district state recovered" in line}


async def _at_least(probe, n: int) -> bool:
    return await probe() >= n


async def _trickle(site, messages, seconds: float) -> None:
    chunks = 16
    size = max(1, len(messages) // chunks)
    for start in range(0, len(messages), size):
        await publish(site, messages[start:start + size])
        await asyncio.sleep(seconds / chunks)


async def test_a_database_outage_delays_the_audit_trail_but_loses_nothing(infrastructure, tmp_path, capsys):
    from streams.operations.embedded import EmbeddedDatabase, embedded_broker, free_port
    from streams.sink.migrate import migrate
    from streams.runtime.topics import ensure_topics
    from tests.streams.runtime.test_metrics import scrape, value

    broker, database = embedded_broker(infrastructure, tmp_path).start(), EmbeddedDatabase(tmp_path).start()
    site = infrastructure.with_overrides(kafka_bootstrap=broker.bootstrap, database_url=database.url,
                                         app_id=f"patrol-outage-{uuid.uuid4().hex[:8]}", data_dir=tmp_path,
                                         metrics_port=free_port())
    worker = None
    try:
        await migrate(site.database_url)
        await ensure_topics(site)
        worker = WorkerProcess(site, tmp_path / "worker.log").start()
        run, rnd = uuid.uuid4().hex[:6], random.Random(3)
        districts = DISTRICTS[:2]
        await publish(site, [unit_log_on(run, d, i, rnd) for d in districts for i in range(150)])
        reports = [report(run, d, i) for i in range(150) for d in districts]
        before, during = reports[:200], reports[200:]
        senders = [asyncio.create_task(_trickle(site, before, seconds=12))]

        async def written() -> int:
            connection = await asyncpg.connect(site.database_url)
            try:
                return await connection.fetchval("SELECT count(*) FROM incidents WHERE report_id LIKE $1", f"{run}-%")
            finally:
                await connection.close()

        async def sink_retried() -> bool:
            rows = await asyncio.to_thread(scrape, site.metrics_port)
            return value(rows["patrol_sink_retries"], "patrol_sink_retries_total") > 0

        # the outage strikes a sink that is writing, and more reports arrive while it lasts, whatever the
        # machine's pace: waited for, where fixed sleeps would have guessed
        await eventually(written, timeout=120)
        database.pause()
        down_at = time.monotonic()
        senders.append(asyncio.create_task(_trickle(site, during, seconds=6)))
        await eventually(sink_retried, timeout=120)
        await asyncio.sleep(max(0.0, 12 - (time.monotonic() - down_at)))  # an outage, not a blip
        database.resume()
        outage = time.monotonic() - down_at
        await asyncio.gather(*senders)
        db = await asyncpg.connect(site.database_url)
        try:
            async def all_in():
                n = await db.fetchval("SELECT count(*) FROM incidents WHERE report_id LIKE $1", f"{run}-%")
                return n == len(reports)

            await eventually(all_in, timeout=120)
            caught_up = time.monotonic() - down_at - outage
            # exactly once: one row per report, and every incident's events gap-free
            assert await db.fetchval("SELECT count(DISTINCT report_id) FROM incidents WHERE report_id LIKE $1",
                                     f"{run}-%") == len(reports)
            gaps = await db.fetchval(
                """SELECT count(*) FROM (SELECT incident_id, max(seq) AS top, count(*) AS n FROM incident_events
                   GROUP BY incident_id) t WHERE top <> n""")
            assert gaps == 0
            orders = await db.fetchval("SELECT count(*) FROM dispatch_orders WHERE kind = 'assign'")
            assert orders == len(reports)
        finally:
            await db.close()
        worker.assert_alive()
        retries = value(scrape(site.metrics_port)["patrol_sink_retries"], "patrol_sink_retries_total")
        with capsys.disabled():
            print(f"\n[database outage] PostgreSQL down {outage:.1f} s mid-stream; {retries:.0f} sink retries; "
                  f"all {len(reports)} incidents in the database {caught_up:.1f} s after it came back")
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()
        database.stop()


def test_a_worker_whose_broker_is_gone_still_stops(second_site, tmp_path):
    """The stop sequence would wait for ever on a broker that is gone; the worker exits anyway (its grace timer)."""
    import signal

    from streams.operations.embedded import embedded_broker
    from streams.runtime.consumer_loop import SHUTDOWN_GRACE_S

    broker = embedded_broker(second_site, tmp_path).start()
    site = second_site.with_overrides(kafka_bootstrap=broker.bootstrap, app_id=f"patrol-orphan-{uuid.uuid4().hex[:6]}")
    asyncio.run(_ensure(site))
    worker = WorkerProcess(site, tmp_path / "worker.log").start()
    try:
        # a worker at work (its group formed, partitions in hand) when the broker goes
        deadline = time.monotonic() + 120
        while "partitions assigned" not in worker.log.read_text():
            assert time.monotonic() < deadline, f"the worker never got its partitions:\n{worker.log.read_text()[-3000:]}"
            worker.assert_alive()
            time.sleep(0.2)
        broker.stop()
        worker.process.send_signal(signal.SIGTERM)
        worker.process.wait(timeout=SHUTDOWN_GRACE_S + 15)
    finally:
        if worker.process.poll() is None:
            worker.process.kill()
            pytest.fail("the worker hung in shutdown")


async def _ensure(site) -> None:
    from streams.runtime.topics import ensure_topics

    await ensure_topics(site)
