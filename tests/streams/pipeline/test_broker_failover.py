"""Broker failures on a three-node Apache Kafka cluster (streams/operations/kafka_cluster.py), as deploy/ runs it: replication
3, min.insync.replicas 2, acks=all and idempotent producers. A broker SIGKILLed while reports stream in, then a
rolling restart of all three under load: nothing lost, nothing doubled, and how long dispatch pauses."""

import asyncio
import random
import time
import uuid
from collections import defaultdict

import asyncpg
import pytest
from aiokafka.partitioner import DefaultPartitioner

from streams.operations.embedded import client_settings
from streams.operations.embedded_kafka import choose_broker
from streams.operations.kafka_cluster import KafkaCluster
from streams.sink.migrate import migrate
from streams.operations.publish import publish
from streams.runtime.topics import ensure_topics, worklog_topic
from tests.streams.accounting import (assert_each_report_once, dispatched, longest_pause, orders_on_topic, report,
                                      stream, unit_log_on)
from tests.streams.conftest import WorkerProcess, _admin, _isolated, _with_database, eventually

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(choose_broker("auto") != "kafka", reason="the Kafka cluster needs java and mvn on the PATH"),
    pytest.mark.timeout(600),
]

PER_DISTRICT = 250  # units and reports: 8 districts, 2,000 of each


@pytest.fixture(scope="module")
def cluster_site(infrastructure, tmp_path_factory):
    """Three Kafka nodes, a database of their own on the session's PostgreSQL, and a worker, shared by the tests
    of this module (each leaves the cluster whole)."""
    workdir = tmp_path_factory.mktemp("cluster")
    cluster = KafkaCluster(workdir, infrastructure.cache_dir, partitions=infrastructure.topic_partitions).start()
    name = f"patrol_cluster_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(infrastructure.database_url, f'CREATE DATABASE "{name}"'))
    site = client_settings(infrastructure, cluster).with_overrides(
        database_url=_with_database(infrastructure.database_url, name),
        app_id=f"patrol-cluster-{uuid.uuid4().hex[:8]}", data_dir=workdir, metrics_port=0, topic_replication=3)
    worker = None
    try:
        asyncio.run(migrate(site.database_url))
        asyncio.run(ensure_topics(site))
        worker = WorkerProcess(site, workdir / "worker.log").start()
        yield site, cluster, worker
    finally:
        if worker is not None:
            worker.stop()
        cluster.stop()
        asyncio.run(_admin(infrastructure.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def districts_by_partition(districts, partitions: int) -> dict[int, set[str]]:
    """Which work-log partition each district's entries go to: the worker's producer partitions by district with
    aiokafka's default (Kafka's murmur2) partitioner."""
    choose, every = DefaultPartitioner(), list(range(partitions))
    placed = defaultdict(set)
    for d in districts:
        placed[choose(d.district.encode(), every, every)].add(d.district)
    return placed


def district_of(order) -> str:
    return order.doc["unit_id"].split("-")[1]  # units are named <run>-<district>-U<n>


async def streamed_and_checked(site, db, run: str, districts, fault) -> list:
    """Log the districts' units on, stream a report per unit (`fault.chunks` chunks `fault.pause_s`
    apart: the pauses in dispatch measured are the ones longer than that) and let the
    `fault` strike once dispatch is going (it opens each of its gates when the part of the stream held behind it
    may come), wait until every incident is dispatched, check that nothing was lost or doubled in PostgreSQL and
    on dispatch.orders, and return the orders as they are on the topic."""
    rnd = random.Random(11)
    await publish(site, [unit_log_on(run, d, i, rnd) for d in districts for i in range(PER_DISTRICT)])
    reports = [report(run, d, i) for i in range(PER_DISTRICT) for d in districts]
    total = len(reports)
    sender = asyncio.create_task(stream(site, reports, fault.chunks, fault.pause_s, fault.gates))
    try:
        await eventually(lambda: _at_least(dispatched(db, run), total // 8), timeout=180)
        await fault.strike()
        await sender
    finally:
        if not sender.done():
            sender.cancel()
    await eventually(lambda: _at_least(dispatched(db, run), total), timeout=240)
    await assert_each_report_once(db, run, total)
    # the topic holds the orders the database does, and no others (a record may come twice, with the same id)
    rows = await db.fetch("SELECT order_id, kind FROM dispatch_orders WHERE unit_id LIKE $1", f"{run}-%")
    in_db = {(r["order_id"], r["kind"]) for r in rows}
    orders = await orders_on_topic(site, run, lambda records: _ids(records) >= in_db)
    assert _ids(orders) == in_db
    return orders


def _ids(orders) -> set[tuple[str, str]]:
    return {(o.doc["order_id"], o.doc["kind"]) for o in orders}


async def _at_least(count, n: int) -> bool:
    return await count >= n


class BrokerKill:
    """SIGKILL the node leading `partition` of the work log once dispatch is going; the last quarter of the
    reports comes after it."""

    chunks, pause_s = 100, 0.3  # 2,000 reports in about 30 s

    def __init__(self, cluster: KafkaCluster, topic: str, partition: int):
        self.cluster, self.topic, self.partition = cluster, topic, partition
        self.gates = {self.chunks * 3 // 4: asyncio.Event()}
        self.victim: int | None = None
        self.killed_at = 0.0

    async def strike(self) -> None:
        self.victim = await self.cluster.leader(self.topic, self.partition)
        self.killed_at = time.time()
        self.cluster.kill(self.victim)
        self.gates[self.chunks * 3 // 4].set()


async def test_a_broker_killed_mid_stream_loses_nothing_and_doubles_nothing(cluster_site, capsys):
    site, cluster, worker = cluster_site
    districts = [_isolated(i) for i in range(8)]
    placed = districts_by_partition(districts, site.topic_partitions)
    busiest = max(sorted(placed), key=lambda p: len(placed[p]))
    kill = BrokerKill(cluster, worklog_topic(site), busiest)
    run = uuid.uuid4().hex[:6]
    db = await asyncpg.connect(site.database_url)
    try:
        orders = await streamed_and_checked(site, db, run, districts, kill)
        worker.assert_alive()
        assigned = [o for o in orders if o.doc["kind"] == "assign"]
        stall, resumed = longest_pause([o.sent_at for o in assigned if district_of(o) in placed[busiest]],
                                       kill.killed_at)
        anywhere, _ = longest_pause([o.sent_at for o in assigned], kill.killed_at)
        resent = len(orders) - len(_ids(orders))
    finally:
        await db.close()
        if kill.victim is not None and not cluster.nodes[kill.victim].alive:
            # the next test wants the whole cluster
            await cluster.restart(kill.victim)
            await cluster.until_in_sync(kill.victim)
    with capsys.disabled():
        print(f"\n[broker failover] {len(assigned)} reports, node {kill.victim} (leader of work-log partition "
              f"{busiest}, {len(placed[busiest])} of 8 districts) SIGKILLed mid-stream: dispatch on that partition "
              f"resumed {resumed:.1f} s after the SIGKILL (longest pause in its orders {stall:.1f} s; in all "
              f"orders {anywhere:.1f} s); none lost, none doubled; {resent} order records sent twice")


class RollingRestart:
    """Restart the nodes one at a time (a controlled shutdown, a start on the same data and ports, and the wait
    for it to rejoin every in-sync replica set); a quarter of the reports comes during each node's absence."""

    chunks, pause_s = 200, 0.3  # 2,000 reports in about a minute, about what three restarts take

    def __init__(self, cluster: KafkaCluster):
        self.cluster = cluster
        self.nodes = sorted(cluster.nodes)
        # a quarter of the stream after each node's shutdown: each restart has reports coming in
        self.gates = {self.chunks * k // (len(self.nodes) + 1): asyncio.Event() for k in range(1, len(self.nodes) + 1)}
        self.began = 0.0
        self.took: dict[int, float] = {}

    async def strike(self) -> None:
        self.began = time.time()
        for node, gate in zip(self.nodes, self.gates.values()):
            started = time.time()
            await asyncio.to_thread(self.cluster.shut_down, node)
            gate.set()
            await self.cluster.restart(node)
            await self.cluster.until_in_sync(node)
            self.took[node] = time.time() - started


async def test_a_rolling_restart_under_load_loses_nothing_and_doubles_nothing(cluster_site, capsys):
    site, cluster, worker = cluster_site
    districts = [_isolated(i) for i in range(8, 16)]
    restart = RollingRestart(cluster)
    run = uuid.uuid4().hex[:6]
    db = await asyncpg.connect(site.database_url)
    try:
        orders = await streamed_and_checked(site, db, run, districts, restart)
    finally:
        await db.close()
    worker.assert_alive()
    assigned = [o for o in orders if o.doc["kind"] == "assign"]
    stall, _ = longest_pause([o.sent_at for o in assigned], restart.began)
    resent = len(orders) - len(_ids(orders))
    each = ", ".join(f"node {n} {s:.0f} s" for n, s in restart.took.items())
    with capsys.disabled():
        print(f"\n[broker failover] {len(assigned)} reports, rolling restart of the 3 brokers under load ({each}, "
              f"shutdown to back in every ISR): longest pause in dispatch {stall:.1f} s; none lost, none doubled; "
              f"{resent} order records sent twice")
