"""The district log keeps each core exactly in step with its partition, whatever offsets the consumer hands over."""

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata

from processors.messages import IncidentEvent, IncidentReport, WorkItem
from streams.district_log import DistrictLog
from streams.reference import load_catalogue

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
    await admin.create_topics([NewTopic(topic, 1, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=infrastructure.kafka_bootstrap)
    await producer.start()
    for i in range(10):
        await producer.send_and_wait(topic, report_item(i).model_dump_json().encode(), key=b"JINJIANG")
    await producer.stop()
    group = f"test-group-{uuid.uuid4().hex[:8]}"
    committer = AIOKafkaConsumer(bootstrap_servers=infrastructure.kafka_bootstrap, group_id=group)
    await committer.start()
    committer.assign([TopicPartition(topic, 0)])
    await committer.commit({TopicPartition(topic, 0): OffsetAndMetadata(4, "")})
    await committer.stop()
    return topic, infrastructure, group


def created(outputs) -> list[str]:
    return [o.data["report_id"] for _, o in outputs if isinstance(o, IncidentEvent) and o.type == "created"]


async def test_a_new_owner_replays_to_the_commit_and_processes_what_the_consumer_skipped(log_topic):
    topic, settings, group = log_topic
    log = DistrictLog(settings, topic, load_catalogue(settings), group_id=group)
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
    log = DistrictLog(settings, topic, load_catalogue(settings), group_id=group)
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
