"""The consumer loop hands each record it published to a followed topic back, where the broker placed it, without
reading that topic."""

import asyncio
import json
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.runtime.consumer_loop import ConsumerLoop, Delivered, partitions_of

pytestmark = pytest.mark.integration


async def _topics(settings, *names: str, partitions: int = 2) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    await admin.close()


async def _read_all(settings, topic: str, n: int, timeout: float = 30.0) -> list:
    """The first `n` records of `topic`, with their positions (which conftest's TopicReader does not keep)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest",
                                fetch_max_wait_ms=settings.fetch_max_wait_ms)
    await consumer.start()
    try:
        parts = await partitions_of(consumer, topic)
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        records = []
        deadline = asyncio.get_running_loop().time() + timeout
        while len(records) < n and asyncio.get_running_loop().time() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records += batch
        return records
    finally:
        await consumer.stop()


async def test_records_published_to_a_followed_topic_come_back_with_the_offset_the_broker_gave_them(infrastructure):
    run = uuid.uuid4().hex[:8]
    inbox, log, answers = f"test-loop-in-{run}", f"test-loop-log-{run}", f"test-loop-out-{run}"
    await _topics(infrastructure, inbox, log, answers)
    settings = infrastructure.with_overrides(app_id=f"test-loop-{run}")

    async def forward(record):
        # each inbound record goes on to the log, keyed so that it lands on both of the log's partitions
        return [(log, record.key, record.value)]

    delivered: list[Delivered] = []

    async def answer(record: Delivered):
        delivered.append(record)
        where = {"partition": record.partition, "offset": record.offset, "value": record.value.decode()}
        return [(answers, record.key, json.dumps(where).encode())]

    # the loop consumes the inbox only: whatever it learns of the log comes from the acknowledgements
    loop = ConsumerLoop(settings, "test-follow", f"test-loop-group-{run}", (inbox,), forward,
                        follow={log: answer})
    assert not await loop.publish([(log, b"early", b"before the loop runs")])  # nothing to send it with
    task = asyncio.create_task(loop.run())
    try:
        producer = AIOKafkaProducer(bootstrap_servers=infrastructure.kafka_bootstrap)
        await producer.start()
        try:
            for i in range(20):
                await producer.send(inbox, f"report-{i}".encode(), key=f"k{i % 5}".encode())
            await producer.flush()
        finally:
            await producer.stop()
        assert len(await _read_all(settings, answers, 20, timeout=60)) == 20
        # a record published from outside the consumed records (a clock tick) is followed the same way
        assert await loop.publish([(log, b"tick", b"tick")])
        answered = await _read_all(settings, answers, 21, timeout=30)
        assert len(answered) == 21
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    placed = {(r.partition, r.offset): r.value.decode() for r in await _read_all(settings, log, 21)}
    assert len(placed) == 21
    # every record of the log was handed back once, at the partition and offset where the broker put it, and
    # what the handler returned for it was published
    assert {(d.partition, d.offset): d.value.decode() for d in delivered} == placed
    assert len(delivered) == 21
    assert sorted(json.loads(r.value)["value"] for r in answered) == sorted(placed.values())
    # ...and within a partition in the log's own order
    for partition in {d.partition for d in delivered}:
        offsets = [d.offset for d in delivered if d.partition == partition]
        assert offsets == sorted(offsets)


async def test_an_output_the_producer_refuses_is_replaced_by_its_records_dead_letter_and_the_loop_goes_on(
        infrastructure):
    run = uuid.uuid4().hex[:8]
    inbox, out, letters = f"test-loop-in-{run}", f"test-loop-out-{run}", f"test-loop-letters-{run}"
    await _topics(infrastructure, inbox, out, letters, partitions=1)
    settings = infrastructure.with_overrides(app_id=f"test-loop-{run}")

    async def handle(record):
        # one record's output is larger than the producer may send (1 MiB): refused before it is sent
        size = 2 * 1024 * 1024 if record.value == b"huge" else 10
        return [(out, record.key, b"x" * size)]

    def unpublishable(record, exc):
        return letters, None, f"{record.offset}:{type(exc).__name__}".encode()

    group = f"test-loop-group-{run}"
    loop = ConsumerLoop(settings, "test-refused", group, (inbox,), handle, on_unpublishable=unpublishable)
    task = asyncio.create_task(loop.run())
    try:
        producer = AIOKafkaProducer(bootstrap_servers=infrastructure.kafka_bootstrap)
        await producer.start()
        try:
            for value in (b"a", b"huge", b"b", b"c"):
                await producer.send_and_wait(inbox, value, key=b"k")
        finally:
            await producer.stop()
        published = await _read_all(settings, out, 3, timeout=60)
        dead = await _read_all(settings, letters, 1, timeout=60)
        assert [len(r.value) for r in published] == [10, 10, 10]
        assert [r.value for r in dead] == [b"1:MessageSizeTooLargeError"]

        async def committed() -> int:
            async with AIOKafkaConsumer(bootstrap_servers=infrastructure.kafka_bootstrap, group_id=group,
                                        enable_auto_commit=False) as reader:
                return await reader.committed(TopicPartition(inbox, 0)) or 0

        # the batch with the refused output was committed like any other: the loop never restarted for it
        deadline = asyncio.get_running_loop().time() + 30
        while await committed() < 4 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)
        assert await committed() == 4
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
