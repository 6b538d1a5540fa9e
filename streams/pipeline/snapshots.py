"""Where district snapshots are kept: a compacted topic of ours, one partition per work-log partition.

Why a topic and not PostgreSQL: recovery is on the dispatch path, which depends on the broker alone; with the
snapshots in the database a database outage would stop a takeover, while the sink is built to wait one out.

A snapshot of work-log partition p is every district core of p as of an offset (the entries before it applied,
their outputs delivered), as zlib-compressed JSON cut into chunks below the broker's record limit, then a
manifest naming the chunks' offsets and the whole's SHA-256. Two slots take turns (keys `p/slot/i` and `p/slot`),
so that compaction never removes the chunks of the newest complete snapshot, and one cut short by a crash leaves
the other slot whole. A reader takes the newest manifest whose chunks are all there and match.
"""

from __future__ import annotations

import asyncio
import hashlib
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone

import pydantic_core
import structlog
from aiokafka import AIOKafkaProducer, TopicPartition
from pydantic import BaseModel, Field

from streams.runtime import clients
from streams.runtime.clients import reading
from streams.settings import Settings

log = structlog.get_logger("patrol.snapshots")

FORMAT = 1
# well below the broker's and the producer's 1 MiB, with room for the record's own overhead
CHUNK_BYTES = 512 * 1024
# how many records back from the end a reader looks at first for a manifest (then twice as many, and so on)
FIRST_LOOK = 64
# what a snapshot may grow to when decompressed: a record that claims more is not ours (a compression bomb)
LARGEST_DECOMPRESSED = 512 * 1024 * 1024
# a read of the topic that makes no progress for this long is a broker failure (the loop restarts)
READ_STALL_S = 30.0


class Manifest(BaseModel):
    format: int
    partition: int
    slot: int = Field(ge=0, le=1)
    offset: int = Field(ge=0)
    chunks: list[int] = Field(min_length=1, max_length=4096)
    sha256: str
    bytes: int
    taken_at: str


@dataclass(frozen=True)
class Snapshot:
    partition: int
    offset: int  # the first work-log entry it does not include
    cores: dict[str, dict]  # district -> processors.snapshot document
    slot: int
    stored_bytes: int


class SnapshotStore:
    def __init__(self, settings: Settings, topic: str):
        self.settings = settings
        self.topic = topic
        self._producer: AIOKafkaProducer | None = None
        self._next_slot: dict[int, int] = {}

    async def write(self, partition: int, offset: int, cores: dict[str, dict]) -> Snapshot:
        """Store the cores of work-log `partition` as of `offset`; returns once the broker has it all."""
        # compressed off the event loop (zlib lets go of the GIL): megabytes of a long-lived district take a while
        payload = await asyncio.to_thread(zlib.compress, pydantic_core.to_json(cores), 6)
        slot = self._next_slot.get(partition, 0)
        target = self._target(partition)
        producer = await self._started_producer()
        chunks = []
        for i, start in enumerate(range(0, max(1, len(payload)), CHUNK_BYTES)):
            placed = await producer.send_and_wait(self.topic, payload[start:start + CHUNK_BYTES],
                                                  key=f"{partition}/{slot}/{i}".encode(), partition=target)
            chunks.append(placed.offset)
        manifest = Manifest(format=FORMAT, partition=partition, slot=slot, offset=offset, chunks=chunks,
                            sha256=hashlib.sha256(payload).hexdigest(), bytes=len(payload),
                            taken_at=datetime.now(timezone.utc).isoformat())
        await producer.send_and_wait(self.topic, manifest.model_dump_json().encode(),
                                     key=f"{partition}/{slot}".encode(), partition=target)
        self._next_slot[partition] = 1 - slot
        return Snapshot(partition, offset, cores, slot, len(payload))

    async def candidates(self, partition: int) -> AsyncIterator[Snapshot]:
        """The complete snapshots of work-log `partition`, newest first: a reader takes the first it can use."""
        tp = TopicPartition(self.topic, self._target(partition))
        async with reading(self.settings, max_partition_fetch_bytes=2 * CHUNK_BYTES) as consumer:
            consumer.assign([tp])
            start = (await consumer.beginning_offsets([tp]))[tp]
            end = (await consumer.end_offsets([tp]))[tp]
            looked_from, span = end, FIRST_LOOK
            while looked_from > start:
                window_start = max(start, looked_from - span)
                records = await _read(consumer, tp, window_start, looked_from)
                for at, manifest in sorted(_manifests(records, partition), key=lambda m: m[1].offset, reverse=True):
                    snapshot = await self._complete(consumer, tp, manifest, at, start)
                    if snapshot is not None:
                        self._next_slot[partition] = 1 - snapshot.slot
                        yield snapshot
                looked_from, span = window_start, span * 2

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def _complete(self, consumer, tp: TopicPartition, manifest: Manifest, at: int,
                        start: int) -> Snapshot | None:
        """The snapshot a manifest (at offset `at`) names, if its chunks are all there and match it."""
        first, last = min(manifest.chunks), max(manifest.chunks)
        # its chunks were written just before it, one after another: a manifest that says otherwise is not ours
        if first < start or last >= at or last - first > 4 * len(manifest.chunks) + FIRST_LOOK:
            log.warning("a snapshot manifest naming chunks where they cannot be is passed over",
                        partition=manifest.partition, offset=at)
            return None
        chunks = {r.offset: r for r in await _read(consumer, tp, first, last + 1)}
        prefix = f"{manifest.partition}/{manifest.slot}/"
        parts = [chunks.get(o) for o in manifest.chunks]
        if any(p is None or p.key != f"{prefix}{i}".encode() or len(p.value or b"") > CHUNK_BYTES
               for i, p in enumerate(parts)):
            log.warning("a snapshot's chunks are gone (compacted or overwritten); trying an older one",
                        partition=manifest.partition, offset=manifest.offset)
            return None
        payload = b"".join(p.value or b"" for p in parts)
        if hashlib.sha256(payload).hexdigest() != manifest.sha256:
            log.warning("a snapshot does not match its manifest; trying an older one",
                        partition=manifest.partition, offset=manifest.offset)
            return None
        try:
            inflater = zlib.decompressobj()
            text = inflater.decompress(payload, LARGEST_DECOMPRESSED)
            if inflater.unconsumed_tail:
                raise ValueError(f"larger than {LARGEST_DECOMPRESSED} bytes")
            cores = pydantic_core.from_json(text)
            if not isinstance(cores, dict):
                raise ValueError("not an object of district cores")
        except (zlib.error, ValueError) as exc:
            log.warning("an unreadable snapshot is passed over", partition=manifest.partition,
                        offset=manifest.offset, error=str(exc)[:200])
            return None
        return Snapshot(manifest.partition, manifest.offset, cores, manifest.slot, len(payload))

    def _target(self, partition: int) -> int:
        # the same number as the work-log partition: both topics are made with settings.topic_partitions
        return partition

    async def _started_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = clients.producer(self.settings, max_request_size=CHUNK_BYTES + 64 * 1024)
            await producer.start()
            self._producer = producer
        return self._producer


async def _read(consumer, tp: TopicPartition, start: int, end: int) -> list:
    """The records of [start, end) still on the partition."""
    consumer.seek(tp, start)
    records = []
    clock = asyncio.get_running_loop()
    moved_at, position = clock.time(), start
    while position < end:
        batch = await consumer.getmany(tp, timeout_ms=1000)
        records += [r for r in batch.get(tp, []) if r.offset < end]
        now_at = await consumer.position(tp)
        if now_at > position:
            moved_at, position = clock.time(), now_at
        elif clock.time() - moved_at > READ_STALL_S:
            raise TimeoutError(f"reading {tp.topic}:{tp.partition} made no progress at offset {position}")
    return records


def _manifests(records: list, partition: int) -> list[tuple[int, Manifest]]:
    """The manifests among `records` that speak of work-log `partition`, with their offsets (anything
    unreadable is passed over)."""
    found = []
    for record in records:
        key = (record.key or b"").decode("utf-8", "replace")
        if key.count("/") != 1 or not key.startswith(f"{partition}/"):
            continue
        try:
            manifest = Manifest.model_validate_json(record.value or b"")
        except ValueError:
            log.warning("an unreadable snapshot manifest is passed over", offset=record.offset)
            continue
        if manifest.format == FORMAT and manifest.partition == partition:
            found.append((record.offset, manifest))
    return found
