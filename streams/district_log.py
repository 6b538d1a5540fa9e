"""The district cores of the work-log partitions this worker owns, rebuilt by replaying the log.

A core's state is a pure function of its district's log, so instead of a
changelog we keep it in memory and, whenever a partition's next offset is not
the one we hold state for (first assignment, a rebalance, a restart), replay
the partition from its start up to that offset with the outputs discarded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from processors.catalogue import Catalogue
from processors.district import DistrictCore
from processors.messages import Message, WorkItem
from streams.settings import Settings

log = structlog.get_logger("patrol.district")


@dataclass
class PartitionCores:
    next_offset: int = 0
    cores: dict[str, DistrictCore] = field(default_factory=dict)

    def apply(self, item: WorkItem, catalogue: Catalogue) -> list[Message]:
        core = self.cores.get(item.district)
        if core is None:
            core = self.cores[item.district] = DistrictCore(item.district, catalogue)
        return core.apply(item)


class DistrictLog:
    def __init__(self, settings: Settings, topic: str, catalogue: Catalogue):
        self.settings = settings
        self.topic = topic
        self.catalogue = catalogue
        self.partitions: dict[int, PartitionCores] = {}

    async def apply(self, partition: int, offset: int, item: WorkItem | None) -> list[Message]:
        """Apply the item at `offset`; `None` (an unreadable entry) only advances the position."""
        cores = self.partitions.get(partition)
        if cores is None or cores.next_offset != offset:
            cores = self.partitions[partition] = await self._replay(partition, offset)
        # the position moves on even if the core fails on this item, exactly as in a replay,
        # so that live processing and replay keep the same state
        cores.next_offset = offset + 1
        return cores.apply(item, self.catalogue) if item is not None else []

    async def _replay(self, partition: int, until: int) -> PartitionCores:
        cores = PartitionCores()
        if until == 0:
            return cores
        started = time.monotonic()
        tp = TopicPartition(self.topic, partition)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            **self.settings.kafka_client_options(),
        )
        await consumer.start()
        replayed = 0
        try:
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            position = await consumer.position(tp)
            while position < until:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for record in batch.get(tp, []):
                    if record.offset >= until:
                        break
                    item = _parse(record.value)
                    if item is not None:
                        try:
                            cores.apply(item, self.catalogue)
                        except Exception:  # noqa: BLE001 - it failed live too and was dead-lettered then
                            pass
                    replayed += 1
                position = await consumer.position(tp)
        finally:
            await consumer.stop()
        cores.next_offset = until
        log.info(
            "district state rebuilt from the work log",
            partition=partition, entries=replayed, seconds=round(time.monotonic() - started, 3),
        )
        return cores


def _parse(value: bytes | None) -> WorkItem | None:
    try:
        return WorkItem.model_validate_json(value or b"")
    except ValueError:
        return None
