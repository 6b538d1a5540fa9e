"""Recovery of a work-log partition's district cores: the newest usable snapshot, then the entries after it.

A worker given a partition restores the cores from the partition's newest snapshot (streams/pipeline/snapshots.py) and
replays, silently, only the entries between the snapshot and the group's committed offset: their outputs were
published by the previous owner. So a takeover costs the entries of one snapshot interval, whatever the log's
age, and the log can be kept for days instead of for ever. Without a snapshot (a new log) it replays from the
log's start. A snapshot is taken only once the outputs of every entry before it are delivered, so one that
stands beyond the committed offset is still right: the entries up to it count as done.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import structlog
from aiokafka import TopicPartition

from processors.catalogue import Catalogue
from processors.district import DistrictCore
from processors.messages import Message, WorkItem
from processors.snapshot import restore
from streams.runtime import health, metrics
from streams.runtime.clients import reading
from streams.settings import Settings
from streams.pipeline.snapshots import Snapshot, SnapshotStore

log = structlog.get_logger("patrol.recovery")

# how many replayed entries make a heartbeat of the loop that waits for the replay
REPLAY_PROGRESS_EVERY = 1000
# how long a reader waits for one entry it asks for, when the broker's reported end says it is not there
HOLDS_WAIT_S = 3.0


@dataclass
class PartitionCores:
    """The district cores of one work-log partition, and where they stand in it."""

    next_offset: int = 0
    cores: dict[str, DistrictCore] = field(default_factory=dict)
    # the entry the last snapshot stands at, and when it was taken or the state recovered (monotonic seconds)
    snapshot_offset: int = 0
    snapshot_at: float = field(default_factory=time.monotonic)

    def apply(self, item: WorkItem, catalogue: Catalogue) -> list[Message]:
        core = self.cores.get(item.district)
        if core is None:
            core = self.cores[item.district] = DistrictCore(item.district, catalogue)
        return core.apply(item)


class Recovery:
    def __init__(self, settings: Settings, topic: str, catalogue: Catalogue, snapshots: SnapshotStore, *,
                 group_id: str, loop: str | None = None):
        """`group_id`: the consumer group whose committed offsets mark what was published; `loop`: the consumer
        loop waiting for a recovery, told of its progress (a long replay is work, not a stall)."""
        self.settings = settings
        self.topic = topic
        self.catalogue = catalogue
        self.snapshots = snapshots
        self.group_id = group_id
        self.loop = loop

    async def rebuild(self, partition: int, upto: int | None = None) -> PartitionCores:
        """The cores of `partition` as of the group's committed offset (or `upto`, if that is earlier), or as of
        a newer snapshot."""
        started = time.monotonic()
        committed = await self._committed(partition)
        if upto is not None:
            committed = min(committed, upto)
        first, end = await self._bounds(partition)
        cores, snapshot = await self._restored(partition, end)
        if cores.next_offset < first:
            # the log lost entries after the newest snapshot to retention (every worker was down longer than the
            # retention, or snapshots kept failing): the state goes on from what is left, and says so
            log.error("work-log entries after the newest snapshot are gone; recovering from what is left",
                      partition=partition, snapshot_at=cores.next_offset, log_starts_at=first)
            metrics.RECOVERY_GAPS.inc()
        replayed = 0
        async for _, item in self.read(partition, max(cores.next_offset, first), committed):
            if item is not None:
                try:
                    cores.apply(item, self.catalogue)
                except Exception:  # noqa: BLE001 - it failed live too and was dead-lettered then
                    pass
            replayed += 1
            if self.loop and replayed % REPLAY_PROGRESS_EVERY == 0:
                health.progress(self.loop)
        cores.next_offset = max(committed, cores.next_offset, first)
        seconds = time.monotonic() - started
        metrics.RECOVERY_SECONDS.observe(seconds)
        metrics.RECOVERY_ENTRIES.inc(replayed)
        log.info("district state recovered", partition=partition, snapshot_at=snapshot.offset if snapshot else None,
                 districts=len(cores.cores), replayed=replayed, seconds=round(seconds, 3), resumes_at=cores.next_offset)
        return cores

    async def read(self, partition: int, start: int, end: int) -> AsyncIterator[tuple[int, WorkItem | None]]:
        """Entries [start, end) of a work-log partition (None for an unreadable one)."""
        if start >= end:
            return
        tp = TopicPartition(self.topic, partition)
        async with reading(self.settings) as consumer:
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

    async def _restored(self, partition: int, end: int) -> tuple[PartitionCores, Snapshot | None]:
        """The cores of the newest snapshot that restores, or none (start from the log's beginning)."""
        async with contextlib.aclosing(self.snapshots.candidates(partition)) as candidates:
            async for snapshot in candidates:
                if snapshot.offset > end and not await self._holds(partition, snapshot.offset - 1):
                    # (the end a broker reports may lag its last entries: Tansu's does, by one at times)
                    log.warning("a snapshot beyond the end of its log is passed over (the log was made anew?)",
                                partition=partition, snapshot_at=snapshot.offset, log_ends_at=end)
                    continue
                try:
                    cores = {district: restore(doc, self.catalogue) for district, doc in snapshot.cores.items()}
                except Exception as exc:  # noqa: BLE001 - an unreadable snapshot is passed over, not fatal
                    log.warning("a snapshot that does not restore is passed over", partition=partition,
                                snapshot_at=snapshot.offset, error=f"{type(exc).__name__}: {exc}"[:300])
                    continue
                return PartitionCores(next_offset=snapshot.offset, cores=cores,
                                      snapshot_offset=snapshot.offset), snapshot
        return PartitionCores(), None

    async def _holds(self, partition: int, offset: int) -> bool:
        """Whether the log holds an entry at `offset` (asked when the end the broker reports says it does not)."""
        tp = TopicPartition(self.topic, partition)
        async with reading(self.settings) as consumer:
            consumer.assign([tp])
            consumer.seek(tp, offset)
            batch = await consumer.getmany(tp, timeout_ms=int(HOLDS_WAIT_S * 1000))
            return any(record.offset == offset for record in batch.get(tp, []))

    async def _committed(self, partition: int) -> int:
        # the group's own bookkeeping, read without joining the group
        async with reading(self.settings, group_id=self.group_id) as consumer:
            return await consumer.committed(TopicPartition(self.topic, partition)) or 0

    async def _bounds(self, partition: int) -> tuple[int, int]:
        """The first entry still in the log (retention removes the oldest) and the offset after the last."""
        tp = TopicPartition(self.topic, partition)
        async with reading(self.settings) as consumer:
            return (await consumer.beginning_offsets([tp]))[tp], (await consumer.end_offsets([tp]))[tp]


def _parse(value: bytes | None) -> WorkItem | None:
    try:
        return WorkItem.model_validate_json(value or b"")
    except ValueError:
        return None
