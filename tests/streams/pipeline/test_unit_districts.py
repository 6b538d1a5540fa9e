"""The unit map survives its worker: a new owner of the units' partitions reads back where each unit is."""

import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.pipeline.unit_districts import UnitDistricts

pytestmark = pytest.mark.integration


async def test_a_new_owner_reads_back_where_each_unit_logged_on_and_off(infrastructure):
    topic = f"test-unit-districts-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=infrastructure.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 2, 1, topic_configs={"cleanup.policy": "compact"})])
    await admin.close()

    first = UnitDistricts(infrastructure, topic)
    producer = AIOKafkaProducer(bootstrap_servers=infrastructure.kafka_bootstrap)
    await producer.start()
    try:
        for unit_id, district in (("U-1", "JINJIANG"), ("U-2", "JINJIANG"), ("U-1", "TEST-01"), ("U-2", None)):
            name, key, value = first.record(unit_id, district)
            await producer.send_and_wait(name, value, key=key)
    finally:
        await producer.stop()
    assert first.get("U-1") == "TEST-01" and first.get("U-2") is None

    second = UnitDistricts(infrastructure, topic)
    assert second.stale
    await second.load()
    assert not second.stale
    # the last entry of each unit wins: moved to another district, logged off
    assert second.get("U-1") == "TEST-01"
    assert second.get("U-2") is None
    assert second.get("U-3") is None  # never logged on

