"""The district log keeps each core exactly in step with its partition, whatever offsets the consumer hands over."""

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata

from processors.messages import IncidentEvent, IncidentReport, WorkItem
from streams.runtime import metrics
from streams.pipeline.district_log import DistrictLog
from streams.reference import load_catalogue
from streams.pipeline.snapshots import SnapshotStore

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 25, 8, tzinfo=timezone.utc)


def report_item(i: int) -> WorkItem:
    report = IncidentReport(schema_version=1, report_id=f"LOG-{i}", source="sensor", category="CM-GARBAGE",
                            lat=30.58 + i * 0.002, lon=104.12, reported_at=T0)
    return WorkItem(kind="report", district="JINJIANG", street="JJ-SS", at=T0 + timedelta(seconds=i), report=report)


@pytest.fixture
async def log_topic(infrastructure):
    """A one-partition work log holding ten reports, and the group's committed offset at 4."""
    topic = f"test-worklog-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=infrastructure.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1), NewTopic(f"{topic}-snapshots", 1, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=infrastructure.kafka_bootstrap)
    await producer.start()
    for i in range(10):
        await producer.send_and_wait(topic, report_item(i).model_dump_json().encode(), key=b"JINJIANG")
    await producer.stop()
    group = f"test-group-{uuid.uuid4().hex[:8]}"
    await commit(infrastructure, group, topic, 4)
    return topic, infrastructure, group


async def commit(settings, group: str, topic: str, offset: int) -> None:
    committer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=group)
    await committer.start()
    committer.assign([TopicPartition(topic, 0)])
    await committer.commit({TopicPartition(topic, 0): OffsetAndMetadata(offset, "")})
    await committer.stop()


def district_log(topic: str, settings, group: str) -> DistrictLog:
    return DistrictLog(settings, topic, load_catalogue(settings), SnapshotStore(settings, f"{topic}-snapshots"),
                       group_id=group)


def created(outputs) -> list[str]:
    return [o.data["report_id"] for _, o in outputs if isinstance(o, IncidentEvent) and o.type == "created"]


async def test_a_new_owner_replays_to_the_commit_and_processes_what_the_consumer_skipped(log_topic):
    topic, settings, group = log_topic
    log = district_log(topic, settings, group)
    # the consumer resumes past the committed offset (4): entries 4..6 must still be processed, live
    outputs = await log.apply(0, 7, report_item(7))
    assert created(outputs) == ["LOG-4", "LOG-5", "LOG-6", "LOG-7"]
    core = log.partitions[0].cores["JINJIANG"]
    assert {f"LOG-{i}" for i in range(8)} == set(core.state.reports)
    # handed entry 5 again: already done, nothing is published twice
    assert await log.apply(0, 5, report_item(5)) == []
    assert created(await log.apply(0, 8, report_item(8))) == ["LOG-8"]
    # taken away in a rebalance and given back: rebuilt from the log again
    log.forget({0})
    assert created(await log.apply(0, 4, report_item(4))) == ["LOG-4"]


async def test_an_entry_known_to_stand_next_is_taken_once_whichever_way_it_arrives_first(log_topic):
    topic, settings, group = log_topic
    log = district_log(topic, settings, group)
    # before the partition has been rebuilt nothing is due: the consumer's first entry rebuilds it
    assert not log.due(0, 4)
    assert created(await log.apply(0, 4, report_item(4))) == ["LOG-4"]
    # entry 5 acknowledged before it is read back: due, taken, and then not taken again when read back
    assert log.due(0, 5) and not log.processed(0, 5)
    assert created(await log.apply(0, 5, report_item(5))) == ["LOG-5"]
    assert log.processed(0, 5)
    assert await log.apply(0, 5, report_item(5)) == []
    # an entry whose predecessor (another writer's) has not been read yet is not due
    assert not log.due(0, 7)
    assert created(await log.apply(0, 6, report_item(6))) == ["LOG-6"]
    assert log.due(0, 7)


def replayed() -> float:
    return metrics.RECOVERY_ENTRIES._value.get()


async def test_a_new_owner_restores_the_newest_snapshot_and_replays_only_the_entries_after_it(log_topic):
    topic, settings, group = log_topic
    first = district_log(topic, settings, group)
    assert created(await first.apply(0, 4, report_item(4))) == ["LOG-4"]  # recovered by replaying 0..3
    assert created(await first.apply(0, 5, report_item(5))) == ["LOG-5"]
    await first.store(0, *first.capture(0))  # a snapshot at 6
    await first.snapshots.stop()
    await commit(settings, group, topic, 9)

    before = replayed()
    second = district_log(topic, settings, group)
    second.assigned({0})
    await second.take_over()
    # the snapshot's six entries restored, and only entries 6, 7 and 8 (up to the commit) replayed
    assert replayed() - before == 3
    assert set(second.partitions[0].cores["JINJIANG"].state.reports) == {f"LOG-{i}" for i in range(9)}
    assert second.processed(0, 8) and second.due(0, 9)
    assert created(await second.apply(0, 9, report_item(9))) == ["LOG-9"]
    await second.snapshots.stop()


async def test_a_snapshot_beyond_the_committed_offset_counts_its_entries_as_done(log_topic):
    topic, settings, group = log_topic
    first = district_log(topic, settings, group)
    for i in range(4, 8):
        await first.apply(0, i, report_item(i))
    await first.store(0, *first.capture(0))  # at 8, while the group's commit stands at 4
    await first.snapshots.stop()
    before = replayed()
    second = district_log(topic, settings, group)
    # the consumer hands entry 4 again: it is done (the snapshot is taken only once outputs are delivered)
    assert await second.apply(0, 4, report_item(4)) == []
    assert replayed() == before and second.due(0, 8)
    await second.snapshots.stop()


async def test_unreadable_or_forged_snapshots_are_passed_over_for_the_newest_good_one(log_topic):
    topic, settings, group = log_topic
    first = district_log(topic, settings, group)
    await first.apply(0, 4, report_item(4))
    await first.store(0, *first.capture(0))  # the good one, at 5
    await first.snapshots.stop()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    snapshots = f"{topic}-snapshots"
    forged = [
        (b"0/1/0", b"\x78\x9c" + b"\x00" * 100),  # a chunk that is not zlib
        (b"0/1", b'{"format": 1, "partition": 0, "slot": 1, "offset": 9, "chunks": [1], "sha256": "00", '
                 b'"bytes": 102, "taken_at": "x"}'),  # a manifest whose chunk does not match it
        (b"0/0", b"[" * 50_000),  # nesting past any limit
        (b"0/1", b"\xff\xfe not json"),
        (b"0/0", b'{"format": 1, "partition": 0, "slot": 0, "offset": 9, "chunks": [999999], "sha256": "00", '
                 b'"bytes": 1, "taken_at": "x"}'),  # chunks that are not there
        (b"0/junk/key/3", b"anything"),
    ]
    for key, value in forged:
        await producer.send_and_wait(snapshots, value, key=key)
    await producer.stop()
    second = district_log(topic, settings, group)
    second.assigned({0})
    await second.take_over()
    assert second.due(0, 5)
    assert set(second.partitions[0].cores["JINJIANG"].state.reports) == {f"LOG-{i}" for i in range(5)}
    await second.snapshots.stop()
