"""The embedded brokers (Tansu, Apache Kafka) and database: they start, serve, and never outlive the process that
started them; which broker a run gets."""

import asyncio
import signal
import subprocess
import sys

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.operations.embedded import EmbeddedBroker, EmbeddedDatabase, broker_name
from streams.operations.embedded_kafka import EmbeddedKafka, choose_broker, kafka_version
from streams.settings import Settings
from tests.streams.processes import alive, descendants, wait_gone


async def test_the_embedded_database_and_broker_serve_and_stop_cleanly(tmp_path):
    database, broker = EmbeddedDatabase(tmp_path).start(), EmbeddedBroker(tmp_path).start()
    pids = {database.process.pid, broker.process.pid}
    try:
        connection = await asyncpg.connect(database.url)
        assert "PostgreSQL" in await connection.fetchval("SELECT version()")
        await connection.close()
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        assert isinstance(await admin.list_topics(), list)
        await admin.close()
    finally:
        database.stop()
        broker.stop()
    assert wait_gone(pids) == set()
    assert not database.pgdata.exists()


HOLDER = """
import sys, time
from pathlib import Path
from streams.operations.embedded import EmbeddedBroker, EmbeddedDatabase
d = EmbeddedDatabase(Path(sys.argv[1])).start()
b = EmbeddedBroker(Path(sys.argv[1])).start()
print(d.process.pid, b.process.pid, flush=True)
time.sleep(600)
"""


def assert_children_die_with_their_parent(holder: subprocess.Popen, children: int) -> None:
    """`holder` prints the pids of the `children` it started on one line, then waits: SIGKILL it, and none of its
    family may be left."""
    try:
        pids = {int(p) for p in holder.stdout.readline().split()}
        assert len(pids) == children and all(alive(p) for p in pids)
        family = pids | descendants(holder.pid)
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        assert wait_gone(family) == set(), "orphans survived a SIGKILL of their parent"
    finally:
        if holder.poll() is None:
            holder.kill()


def test_a_killed_parent_takes_the_broker_and_database_with_it(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert_children_die_with_their_parent(holder, 2)


needs_java_and_maven = pytest.mark.skipif(
    choose_broker("auto") != "kafka", reason="the embedded Kafka needs java and mvn on the PATH")


@needs_java_and_maven
async def test_the_embedded_kafka_round_trips_a_record_and_stops_cleanly(tmp_path):
    broker = EmbeddedKafka(tmp_path, Settings().cache_dir, partitions=2).start()
    pid = broker.process.pid
    try:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            # a topic nobody created: the broker makes it on first use, with the partitions it was given
            sent = await producer.send_and_wait("probe.topic", b"a report", key=b"k-1")
            assert await producer.partitions_for("probe.topic") == {0, 1}
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition("probe.topic", sent.partition)
            consumer.assign([tp])
            consumer.seek(tp, sent.offset)
            record = await asyncio.wait_for(consumer.getone(tp), 30)
        finally:
            await consumer.stop()
        assert (record.key, record.value) == (b"k-1", b"a report")
    finally:
        broker.stop()
    assert wait_gone({pid}) == set()
    assert not broker.data.exists(), "the broker's data outlived it"
    assert (tmp_path / "kafka.log").exists()


KAFKA_HOLDER = """
import sys, time
from pathlib import Path
from streams.operations.embedded_kafka import EmbeddedKafka
k = EmbeddedKafka(Path(sys.argv[1]), Path(sys.argv[2])).start()
print(k.process.pid, flush=True)
time.sleep(600)
"""


@needs_java_and_maven
def test_a_killed_parent_takes_the_embedded_kafka_with_it(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", KAFKA_HOLDER, str(tmp_path), str(Settings().cache_dir)],
                              stdout=subprocess.PIPE, text=True)
    assert_children_die_with_their_parent(holder, 1)


CLUSTER_HOLDER = """
import sys, time
from pathlib import Path
from streams.operations.kafka_cluster import KafkaCluster
c = KafkaCluster(Path(sys.argv[1]), Path(sys.argv[2])).start()
print(*(n.process.pid for n in c.nodes.values()), flush=True)
time.sleep(600)
"""


@needs_java_and_maven
def test_a_killed_parent_takes_the_three_kafka_nodes_with_it(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", CLUSTER_HOLDER, str(tmp_path), str(Settings().cache_dir)],
                              stdout=subprocess.PIPE, text=True)
    assert_children_die_with_their_parent(holder, 3)


def test_a_data_directory_is_removed_once_its_broker_is_gone(tmp_path):
    """A broker whose parent was SIGKILLed leaves its data behind; the next start in the same directory removes
    it, and only it (a live run's is locked)."""
    import fcntl

    from streams.operations.embedded_kafka import _remove_abandoned

    abandoned, live = tmp_path / "kafka-a-data", tmp_path / "kafka-b-data"
    for data in (abandoned, live):
        (data / "logs").mkdir(parents=True)
        (data / ".owner").touch()
    with open(live / ".owner", "w") as owner:
        fcntl.flock(owner, fcntl.LOCK_EX)
        _remove_abandoned(tmp_path)
        assert not abandoned.exists()
        assert (live / "logs").exists()


def test_auto_takes_kafka_only_where_java_and_maven_are_installed():
    def on_path(*tools):
        return lambda name: f"/usr/bin/{name}" if name in tools else None

    assert choose_broker("auto", on_path("java", "mvn")) == "kafka"
    assert choose_broker("auto", on_path("java")) == "tansu"
    assert choose_broker("auto", on_path("mvn")) == "tansu"
    assert choose_broker("auto", on_path()) == "tansu"
    # said outright, the choice stands whatever is installed
    assert choose_broker("tansu", on_path("java", "mvn")) == "tansu"
    assert choose_broker("kafka", on_path()) == "kafka"


def test_the_broker_choice_is_a_setting(monkeypatch):
    monkeypatch.delenv("PATROL_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setenv("PATROL_EMBEDDED_BROKER", "tansu")
    assert broker_name(Settings()) == "embedded Tansu"
    monkeypatch.setenv("PATROL_EMBEDDED_BROKER", "kafka")
    assert broker_name(Settings()) == f"embedded Apache Kafka {kafka_version()}"
    monkeypatch.setenv("PATROL_KAFKA_BOOTSTRAP", "kafka-1:9092")
    assert broker_name(Settings()) == "given"
    monkeypatch.setenv("PATROL_EMBEDDED_BROKER", "redpanda")
    with pytest.raises(ValueError, match="embedded_broker"):
        Settings()


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch):
    # one random id in 64 does in URL-safe base64, and kafka-storage read it as an option: the broker never started
    import uuid

    from streams.operations import embedded_kafka

    draws = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x01" * 16)])
    monkeypatch.setattr(embedded_kafka.uuid, "uuid4", lambda: next(draws))
    assert embedded_kafka.cluster_id() == "AQEBAQEBAQEBAQEBAQEBAQ"
