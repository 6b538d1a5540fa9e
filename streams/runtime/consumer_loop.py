"""A consumer-group loop for the path every report and unit event takes (intake and the district core): a
batch in, each record handled, its outputs published, and the batch committed once they are delivered (the
loop's `Checkpoint`, streams/runtime/checkpoint.py).

faust hands an agent one message at a time across its consumer thread. On Tansu a bare faust echo agent
took 10 ms a hop at 100 messages/s but 190 ms (p99 480 ms) at 500/s, where a plain aiokafka loop on the
same broker took 11 ms (p99 49 ms). So that path runs as one of these loops, a task of the worker's runtime
(docs/adr/0001-faust-runtime.md).

Stopping (`stop`) is one sequence: stop fetching; let the batch in hand and the deliveries of followed records
finish; wait for every output in flight and commit what they back; leave the consumer group (the consumer's
stop sends LeaveGroup, so the next member gets the partitions at once, not after the session timeout); stop the
producer. The process bounds it with `exit_if_not_stopped_in(SHUTDOWN_GRACE_S)`: with the broker gone it would
wait for ever, and what was not committed is redone by the next owner anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from streams.runtime import clients, health, metrics
from streams.runtime.checkpoint import Checkpoint, Sent
from streams.runtime.error_policy import Outgoing, refused_for_good
from streams.settings import Settings

log = structlog.get_logger("patrol.loop")

# how often handled records are committed (once delivered): a crash redoes at most this much
COMMIT_INTERVAL_S = 0.5

PRODUCER_BATCH_BYTES = 512 * 1024

Handler = Callable[[object], Awaitable[Iterable[Outgoing]]]
T = TypeVar("T")
# the record to publish in place of a record's output that the broker refused for good (its dead letter)
OnUnpublishable = Callable[[object, BaseException], Outgoing]


@dataclass(frozen=True)
class Delivered:
    """A record this loop published, as the broker placed it: shaped like a consumed record, so that the
    handler of its topic can take it without waiting to read it back (ConsumerLoop's `follow`)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


async def partitions_of(consumer: AIOKafkaConsumer, *topics: str) -> list[TopicPartition]:
    """Every partition of `topics` (none of a topic that does not exist), from metadata asked for now.

    A consumer that has only started knows no topic's partitions on Apache Kafka: aiokafka's first metadata
    request names no topic, which Kafka answers with none (Tansu with every topic), and the next one comes when
    the metadata is 5 minutes old. So its partitions_for_topic says None, where this asks the broker."""
    cluster = await consumer._client.fetch_all_metadata()  # (no public way; `consumer.topics()` keeps only names)
    return [TopicPartition(topic, p) for topic in topics for p in sorted(cluster.partitions_for_topic(topic) or ())]


# How long a stopping process may take to finish in-flight work and leave its groups.
SHUTDOWN_GRACE_S = 20.0


def exit_if_not_stopped_in(grace_s: float) -> None:
    """Exit the process if it has not stopped `grace_s` from now: with the broker or the database gone, a clean
    stop would wait on them for ever, and what was not committed is redone by the next owner anyway."""
    def give_up() -> None:
        log.error("shutdown did not finish in time; exiting", grace_s=grace_s)
        os._exit(1)

    timer = threading.Timer(grace_s, give_up)
    timer.daemon = True
    timer.start()


async def restart_on_failure(run: Callable[[], Awaitable[None]], what: str,
                             stopping: asyncio.Event | None = None, *, loop: str | None = None) -> None:
    """Run `run` until `stopping` is set; when it fails, start it again after a pause that grows to 30 s (cut
    short by a stop). What it had not committed is fetched again, so a restart loses nothing. Each restart
    counts in patrol_loop_restarts_total{loop=`loop` or `what`}."""
    stopping = stopping or asyncio.Event()
    restarts = metrics.LOOP_RESTARTS.labels(loop or what)  # the series exists at 0, so the first restart shows
    delay = 1.0
    while not stopping.is_set():
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broker or database hiccup must not end the worker's work
            log.error(f"{what} failed; restarting", error=f"{type(exc).__name__}: {exc}", retry_in_s=delay)
            restarts.inc()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
            delay = min(delay * 2, 30.0)


class _Listener(ConsumerRebalanceListener):
    def __init__(self, loop: "ConsumerLoop"):
        self.owner = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Let the batch in hand finish and commit while the partitions are still ours, so that the next
        # owner does not do it again; if it cannot finish in time, the next owner redoes it (idempotent).
        try:
            await asyncio.wait_for(self._finish_batch(), self.owner.settings.kafka_session_timeout_s / 2)
        except asyncio.TimeoutError:
            log.warning("batch still running at a rebalance; its records will be handled again", loop=self.owner.name)
        if self.owner.on_revoked is not None:
            self.owner.on_revoked(revoked)

    async def _finish_batch(self) -> None:
        async with self.owner._batch_lock:
            if self.owner.consumer is not None:
                await self.owner.settled(self.owner.consumer)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("partitions assigned", loop=self.owner.name,
                 partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in assigned))
        if self.owner.on_assigned is not None:
            async with self.owner._batch_lock:
                await self.owner.on_assigned(assigned)


class ConsumerLoop:
    """Consumes `topics` as group `group_id`; `handle` turns one record into the records to publish."""

    def __init__(self, settings: Settings, name: str, group_id: str, topics: tuple[str, ...], handle: Handler, *,
                 on_revoked: Callable[[list[TopicPartition]], None] | None = None,
                 on_assigned: Callable[[list[TopicPartition]], Awaitable[None]] | None = None, max_records: int = 500,
                 follow: Mapping[str, Handler] | None = None, on_unpublishable: OnUnpublishable | None = None,
                 between_polls: Callable[[], Awaitable[None]] | None = None):
        """`follow` maps topics the loop publishes to a handler that takes each record published there once the
        broker has acknowledged it (a `Delivered`, in the order they were sent), as `handle` takes a consumed one.
        `on_unpublishable` gives what to publish instead when the broker refuses a record's output for good (too
        large, say): its dead letter, so that one record never holds the loop (without it, the loop restarts).
        `between_polls` is awaited after every poll, between records: work an assignment brings (a recovery) that
        must not run inside the rebalance's callback, where a long one would start the next rebalance."""
        self.settings = settings
        self.name = name
        self.group_id = group_id
        self.topics = topics
        self.handle = handle
        self.on_revoked = on_revoked
        self.on_assigned = on_assigned
        self.max_records = max_records
        self.follow = dict(follow or {})
        self.on_unpublishable = on_unpublishable
        self.between_polls = between_polls
        self.consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._batch_lock = asyncio.Lock()  # held while a batch is handled
        # held while one record is handled and its outputs are handed to the producer, so that the outputs of
        # consumed and of delivered records never interleave: each record's go out in the order decided
        self._record_lock = asyncio.Lock()
        # published records of the followed topics, awaiting their acknowledgement, in the order sent
        self._following: asyncio.Queue = asyncio.Queue()
        self._commit_lock = asyncio.Lock()
        # handled since the last commit: the deliveries to wait for, the offsets to commit then
        self.checkpoint_of_run = Checkpoint()
        self._stopping = asyncio.Event()

    async def run_forever(self) -> None:
        """Run the loop until `stop`; if it fails, start it again after a pause (uncommitted records are fetched
        again)."""
        await restart_on_failure(self.run, f"consumer loop {self.name}", self._stopping, loop=self.name)

    def stop(self) -> None:
        """Stop fetching: the loop settles, commits, leaves its group and returns from `run_forever`."""
        self._stopping.set()

    async def run(self) -> None:
        s = self.settings
        consumer = clients.group_consumer(s, self.group_id, fetch_max_wait_ms=s.fetch_max_wait_ms)
        consumer.subscribe(list(self.topics), listener=_Listener(self))
        # A district's work log is one partition, and aiokafka sends one request at a time to a broker:
        # with its default 16 KB batches, a busy district's log would hold every send back to 16 KB per
        # round trip.
        producer = clients.producer(s, linger_ms=0, max_batch_size=PRODUCER_BATCH_BYTES)
        await producer.start()
        self.checkpoint_of_run.reset()
        self._following = asyncio.Queue()
        try:
            await consumer.start()
            self.consumer = consumer
            log.info("consumer loop started", loop=self.name, group=self.group_id)
            committer = asyncio.create_task(self._commit_every(consumer, COMMIT_INTERVAL_S))
            follower = asyncio.create_task(self._follow(producer))
            self._producer = producer
            try:
                await self._poll_until_stopped(consumer, producer, (committer, follower))
                # stopping: what was fetched is handled; what it sent on is taken; all of it delivered, committed
                await self._drain(follower)
                await self.settled(consumer)
                log.info("consumer loop stopped; its work committed", loop=self.name)
            finally:
                self._producer = None
                committer.cancel()
                follower.cancel()
                await asyncio.gather(committer, follower, return_exceptions=True)
        finally:
            self.consumer = None
            if self.on_revoked is not None:
                # what was handled but not committed comes again: state built from it must go with it
                self.on_revoked(list(consumer.assignment()))
            self.checkpoint_of_run.reset()
            await consumer.stop()  # leaves the group: its partitions go to the next member at once
            await producer.stop()

    async def _poll_until_stopped(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer,
                                  helpers: tuple[asyncio.Task, ...]) -> None:
        clock = asyncio.get_running_loop()
        last_measured, lag = 0.0, 0
        while not self._stopping.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=self.max_records)
            health.progress(self.name)
            if clock.time() - last_measured > 5:
                lag = await metrics.measure_lag(self.group_id, consumer)
                last_measured = clock.time()
            health.working(self.name, bool(batch) or lag > 0)  # a stall with work waiting fails /healthz
            for task in helpers:
                if task.done():
                    task.result()  # a delivery that failed: restart, and the records come again
            if self.between_polls is not None:
                async with self._batch_lock, self._record_lock:
                    await self.between_polls()
            if batch:
                async with self._batch_lock:
                    delivered = await self._handle(producer, batch)
                    # handed in only once the whole batch is handled, deliveries and offsets together
                    self.checkpoint_of_run.handled(
                        delivered, {tp: records[-1].offset + 1 for tp, records in batch.items()})

    async def _drain(self, follower: asyncio.Task) -> None:
        """Until every record sent to a followed topic is taken (or the follower failed: raised)."""
        drained = asyncio.create_task(self._following.join())
        await asyncio.wait({drained, follower}, return_when=asyncio.FIRST_COMPLETED)
        drained.cancel()
        if follower.done():
            follower.result()

    async def settled(self, consumer: AIOKafkaConsumer) -> None:
        """Commit every batch handled so far, once its records are delivered."""
        async with self._commit_lock:  # one at a time, so that offsets never move backwards
            offsets = await self.checkpoint_of_run.settle(self._replacement)
            if offsets:
                try:
                    await consumer.commit(offsets)
                except (CommitFailedError, IllegalStateError, KafkaError) as exc:
                    # partitions moved to another worker meanwhile: it handles these records again (idempotent)
                    log.warning("commit refused; the new owner redoes the batch", loop=self.name, error=str(exc))

    async def _replacement(self, origin, exc: BaseException) -> Sent | None:
        """The dead letter of `origin`, sent in place of its output that the broker refused for good."""
        producer = self._producer
        if self.on_unpublishable is None or producer is None:
            return None
        return await self._send(producer, self.on_unpublishable(origin, exc))

    async def _commit_every(self, consumer: AIOKafkaConsumer, interval_s: float) -> None:
        # Committing in the background, a few times a second, keeps the round trips of delivery and
        # commit out of the path of the records that follow; on a crash, what was not committed is redone.
        while True:
            await asyncio.sleep(interval_s)
            await self.settled(consumer)

    async def publish(self, records: Iterable[Outgoing]) -> bool:
        """Publish records that no consumed record stands behind (the clock's ticks) with the loop's producer,
        so that those of followed topics are handed back like the loop's own. False when the loop is
        not running (between restarts, stopping): nothing was sent."""
        producer = self._producer
        if producer is None or self._stopping.is_set():
            return False
        async with self._record_lock:
            for outgoing in records:
                await self._send(producer, outgoing)
        return True

    async def _take(self, producer: AIOKafkaProducer, handle: Handler, record, *, settle: bool = False) -> list[Sent]:
        """Handle one record and hand its outputs to the producer, all under the record lock. With `settle`, its
        deliveries join those the next commit waits for before the lock is let go, so that a checkpoint never
        sees the record's effects without them (a consumed batch's join once the whole batch is handled)."""
        async with self._record_lock:
            # sent as soon as they are decided: the next record's handling overlaps their delivery
            sent = [await self._send(producer, outgoing, record) for outgoing in await handle(record)]
            if settle:
                self.checkpoint_of_run.also_wait_for(sent)
            return sent

    async def checkpoint(self, capture: Callable[[], T]) -> T | None:
        """`capture()`, called between two records, returned once the outputs of every record handled before it
        are delivered (and the records committed): what it captured is then backed by what the broker holds.
        None if the loop is not running or a delivery failed (nothing may be taken as done then)."""
        consumer = self.consumer
        if consumer is None:
            return None
        async with self._batch_lock, self._record_lock:
            captured = capture()
        try:
            await self.settled(consumer)
        except Exception:  # noqa: BLE001 - the loop restarts on its own; this capture is not backed
            return None
        return None if self.checkpoint_of_run.broken else captured

    async def _send(self, producer: AIOKafkaProducer, outgoing: Outgoing, origin=None) -> Sent:
        topic, key, value = outgoing
        try:
            delivery = await producer.send(topic, value, key=key)
        except Exception as exc:  # noqa: BLE001 - sorted below: refused for good, or the producer is failing
            # refused before it was sent (larger than the producer may send): as if the broker had refused it
            if not refused_for_good(exc):
                raise
            delivery = asyncio.get_running_loop().create_future()
            delivery.set_exception(exc)
            return delivery, origin
        if topic in self.follow:
            self._following.put_nowait((delivery, topic, key, value))
        return delivery, origin

    async def _follow(self, producer: AIOKafkaProducer) -> None:
        # A record handed on through a followed topic (a report's work-log entry) is taken as soon as the broker
        # says where it went, instead of a fetch later: that saves a hop of every report on its way to an
        # order. The acknowledgement says the offset, so the handler keeps to the log's order all the same.
        while True:
            delivery, topic, key, value = await self._following.get()
            try:
                placed = await delivery
            except Exception:  # noqa: BLE001 - a lost delivery fails the batch's commit and restarts the loop
                self._following.task_done()
                continue
            try:
                record = Delivered(topic, placed.partition, placed.offset, key, value)
                await self._take(producer, self.follow[topic], record, settle=True)
            finally:
                self._following.task_done()

    async def _handle(self, producer: AIOKafkaProducer, batch: dict) -> list[Sent]:
        delivered = []
        for records in batch.values():
            for record in records:
                delivered += await self._take(producer, self.handle, record)
                # Let the producer's sender, the fetcher and the follower run between records: a batch of
                # hundreds handled without a pause would hold back every output of the batch until its end.
                await asyncio.sleep(0)
        return delivered
