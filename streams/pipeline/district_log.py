"""The district cores of the work-log partitions this worker owns, kept exactly in step with the log.

A core's state is a pure function of its district's log, so we keep it in memory and rebuild it when a
partition arrives (streams/pipeline/recovery.py: the newest snapshot, then the entries after it, replayed silently: a
previous owner already published their outputs). Every entry after that is processed with its outputs
published exactly in log order, whatever offset the consumer hands us next: entries it skips are read from the
log and processed first (a consumer may resume past the committed offset after a rebalance,
faust-streaming#216), entries it hands us again are ignored.

The owner snapshots each partition every `snapshot_every_entries` entries or `snapshot_interval_s` seconds,
and writes the clock's ticks of its districts, each when one of the district's deadlines is due.
"""

from __future__ import annotations

import time
from datetime import datetime

import structlog

from processors.catalogue import Catalogue
from processors.messages import Message, WorkItem
from processors.snapshot import snapshot
from streams.runtime import metrics
from streams.pipeline.recovery import PartitionCores, Recovery
from streams.settings import Settings
from streams.pipeline.snapshots import SnapshotStore

log = structlog.get_logger("patrol.district")


class DistrictLog:
    def __init__(self, settings: Settings, topic: str, catalogue: Catalogue, snapshots: SnapshotStore, *,
                 group_id: str, loop: str | None = None):
        """`group_id`: the consumer group whose committed offsets mark what was published; `loop`: the consumer
        loop that applies the entries (streams/runtime/health.py is told of a long replay's progress)."""
        self.settings = settings
        self.topic = topic
        self.catalogue = catalogue
        self.snapshots = snapshots
        self.recovery = Recovery(settings, topic, catalogue, snapshots, group_id=group_id, loop=loop)
        self.partitions: dict[int, PartitionCores] = {}
        self.pending: set[int] = set()  # assigned, not recovered yet

    def assigned(self, partitions: set[int]) -> None:
        """Partitions given to us: recovered by the next `take_over`, or at their first entry if that comes first.
        Not in the rebalance's callback itself: a recovery that outlasts the group's patience there (a full
        replay of a long log) would start another rebalance, and the partition would go back and forth for ever."""
        self.pending |= partitions - self.partitions.keys()

    async def take_over(self) -> None:
        """Recover the partitions assigned since the last call, rather than at their first entry: their clocks
        must tick, and a takeover should cost nothing to the first report that follows it. One that fails is
        recovered at its first entry instead. Run between two records (the consumer loop's `between_polls`)."""
        while self.pending:
            partition = min(self.pending)
            self.pending.discard(partition)
            if partition in self.partitions:
                continue  # recovered meanwhile, at its first entry
            try:
                self.partitions[partition] = await self.recovery.rebuild(partition)
            except Exception as exc:  # noqa: BLE001 - retried when the partition's next entry arrives
                log.warning("recovery at assignment failed; it is retried at the partition's next entry",
                            partition=partition, error=f"{type(exc).__name__}: {exc}"[:300])

    def forget(self, partitions: set[int]) -> None:
        """Partitions taken away in a rebalance: whoever owns them next may move them on without us."""
        for partition in partitions:
            self.partitions.pop(partition, None)
        self.pending -= partitions

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
            cores = self.partitions[partition] = await self.recovery.rebuild(partition, offset)
        if offset < cores.next_offset:
            return []  # handed to us again: already processed and published
        outputs: list[tuple[WorkItem, Message]] = []
        if offset > cores.next_offset:
            skipped = 0
            async for skipped_offset, skipped_item in self.recovery.read(partition, cores.next_offset, offset):
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

    # ------------------------------------------------------------------ the owner's duties

    def needing_tick(self, now: datetime) -> list[str]:
        """The districts of the owned partitions with a deadline due by `now`: each gets a tick, and nothing
        else does (a district's clock matters only to its deadlines, and every entry moves it on anyway)."""
        return [district for cores in self.partitions.values() for district, core in cores.cores.items()
                if (due := core.state.deadlines.next_due()) is not None and due <= now]

    def snapshots_due(self) -> list[int]:
        """The owned partitions that have moved on by `snapshot_every_entries` entries since their last snapshot,
        or by any entry at all in `snapshot_interval_s` seconds."""
        s, now = self.settings, time.monotonic()
        return [partition for partition, cores in self.partitions.items()
                if cores.next_offset - cores.snapshot_offset >= s.snapshot_every_entries
                or (cores.next_offset > cores.snapshot_offset and now - cores.snapshot_at >= s.snapshot_interval_s)]

    def capture(self, partition: int) -> tuple[int, dict[str, dict]] | None:
        """The partition's cores as snapshot documents, and the offset they stand at (to be taken between
        entries, and stored only once the outputs of every entry before it are delivered)."""
        cores = self.partitions.get(partition)
        if cores is None:
            return None
        started = time.perf_counter()
        documents = {district: snapshot(core) for district, core in cores.cores.items()}
        metrics.SNAPSHOT_SECONDS.labels("capture").observe(time.perf_counter() - started)
        return cores.next_offset, documents

    async def store(self, partition: int, offset: int, documents: dict[str, dict]) -> None:
        started = time.monotonic()
        stored = await self.snapshots.write(partition, offset, documents)
        cores = self.partitions.get(partition)
        if cores is not None:
            cores.snapshot_offset, cores.snapshot_at = offset, time.monotonic()
        metrics.SNAPSHOT_BYTES.observe(stored.stored_bytes)
        metrics.SNAPSHOT_SECONDS.labels("store").observe(time.monotonic() - started)
        log.info("district snapshot stored", partition=partition, offset=offset, districts=len(documents),
                 bytes=stored.stored_bytes, seconds=round(time.monotonic() - started, 3))
