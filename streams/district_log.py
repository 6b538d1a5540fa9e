"""The district cores of the work-log partitions this worker owns, kept exactly in step with the log.

A core's state is a pure function of its district's log, so instead of a
changelog we keep it in memory and rebuild it from the log: when a partition
arrives, its entries up to the group's committed offset are replayed silently
(a previous owner already published their outputs). Every entry after that is
processed with its outputs published exactly in log order, whatever offset the
consumer hands us next: entries it skips are read from the log and processed
first (faust-streaming may resume past the committed offset after a
rebalance, faust-streaming#216), entries it hands us again are ignored.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import structlog
from aiokafka import TopicPartition

from processors.catalogue import Catalogue
from processors.district import DistrictCore
from processors.messages import Message, WorkItem
from streams import health
from streams.consumer_loop import standalone_consumer
from streams.settings import Settings

log = structlog.get_logger("patrol.district")

# how many replayed entries make a heartbeat of the loop that waits for the replay
REPLAY_PROGRESS_EVERY = 1000


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
    def __init__(self, settings: Settings, topic: str, catalogue: Catalogue, *, group_id: str,
                 loop: str | None = None):
        """`loop`: the consumer loop that applies the entries, told of a replay's progress (streams/health.py): a
        long replay is work being done, not a stall."""
        self.settings = settings
        self.loop = loop
        self.topic = topic
        self.group_id = group_id  # the consumer group whose committed offsets mark what was published
        self.catalogue = catalogue
        self.partitions: dict[int, PartitionCores] = {}

    def forget(self, partitions: set[int]) -> None:
        """Partitions taken away in a rebalance: whoever owns them next may move them on without us."""
        for partition in partitions:
            self.partitions.pop(partition, None)

    def processed(self, partition: int, offset: int) -> bool:
        """The entry at `offset` has been processed already (its outputs published)."""
        cores = self.partitions.get(partition)
        return cores is not None and offset < cores.next_offset

    def due(self, partition: int, offset: int) -> bool:
        """The entry at `offset` is the next to process, and `apply` would take it at once (no rebuild, no
        entries to read first): for an entry known to stand there before the consumer hands it over."""
        cores = self.partitions.get(partition)
        return cores is not None and offset == cores.next_offset

    async def apply(self, partition: int, offset: int, item: WorkItem | None) -> list[tuple[WorkItem, Message]]:
        """Process the entry at `offset` (None: unreadable, it only advances the position).

        Returns (entry, output) pairs: the entry's own outputs, preceded by those of any
        entries the consumer skipped."""
        cores = self.partitions.get(partition)
        if cores is None:
            cores = self.partitions[partition] = await self._rebuild(partition, offset)
        if offset < cores.next_offset:
            return []  # handed to us again: already processed and published
        outputs: list[tuple[WorkItem, Message]] = []
        if offset > cores.next_offset:
            skipped = 0
            async for skipped_offset, skipped_item in self._read(partition, cores.next_offset, offset):
                outputs += self._step(cores, skipped_offset, skipped_item)
                skipped += 1
            log.info("caught up with entries the consumer skipped", partition=partition, entries=skipped)
        return outputs + self._step(cores, offset, item)

    def _step(self, cores: PartitionCores, offset: int, item: WorkItem | None) -> list[tuple[WorkItem, Message]]:
        if offset < cores.next_offset:
            return []  # processed meanwhile, when it was delivered (while skipped entries were being read)
        # the position moves on even if the core fails on this item, exactly as in a replay,
        # so that live processing and replay keep the same state
        cores.next_offset = offset + 1
        if item is None:
            return []
        return [(item, output) for output in cores.apply(item, self.catalogue)]

    async def _rebuild(self, partition: int, offset: int) -> PartitionCores:
        """State as of the group's committed offset (or `offset`, if that is earlier)."""
        cores = PartitionCores()
        committed = min(await self._committed(partition), offset)
        started = time.monotonic()
        replayed = 0
        async for entry_offset, item in self._read(partition, 0, committed):
            if item is not None:
                try:
                    cores.apply(item, self.catalogue)
                except Exception:  # noqa: BLE001 - it failed live too and was dead-lettered then
                    pass
            replayed += 1
            if self.loop and replayed % REPLAY_PROGRESS_EVERY == 0:
                health.progress(self.loop)
        cores.next_offset = committed
        log.info("district state rebuilt from the work log", partition=partition, entries=replayed,
                 seconds=round(time.monotonic() - started, 3), resumes_at=committed, delivered_at=offset)
        return cores

    async def _committed(self, partition: int) -> int:
        # the group's own bookkeeping, read without joining the group
        consumer = standalone_consumer(self.settings, group_id=self.group_id)
        await consumer.start()
        try:
            committed = await consumer.committed(TopicPartition(self.topic, partition))
        finally:
            await consumer.stop()
        return committed or 0

    async def _read(self, partition: int, start: int, end: int) -> AsyncIterator[tuple[int, WorkItem | None]]:
        """Entries [start, end) of a work-log partition."""
        if start >= end:
            return
        tp = TopicPartition(self.topic, partition)
        consumer = standalone_consumer(self.settings)
        await consumer.start()
        try:
            consumer.assign([tp])
            consumer.seek(tp, start)
            while True:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for record in batch.get(tp, []):
                    if record.offset >= end:
                        return
                    yield record.offset, _parse(record.value)
                if await consumer.position(tp) >= end:
                    return
        finally:
            await consumer.stop()


def _parse(value: bytes | None) -> WorkItem | None:
    try:
        return WorkItem.model_validate_json(value or b"")
    except ValueError:
        return None
