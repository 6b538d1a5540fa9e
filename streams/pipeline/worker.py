"""The worker: the district pipeline (intake and the district cores, streams/pipeline/pipeline.py) on its consumer
loop, plus (unless it runs on its own, `patrol sink`) the PostgreSQL sink, hosted by a faust app that runs no Kafka
client of its own (docs/adr/0001-faust-runtime.md).

intake (incident.reports, unit.events) ─> district work log ─> district core ─> orders, events, escalations
                      ├─ reporters (personal data) ─> <app id>-reporters ─> sink ─> the incident record
                      └─ bad input ─> incident.reports.dlq      (and dead letters of its own)

The faust app is the process's runtime: its tasks run the consumer loop, the sink and the health endpoints
(streams/runtime/health.py), its timers the clock ticks, the snapshots and the metrics; its boot strategy starts
neither faust's consumer nor its producer (no consumer group, no topic of faust's). The worker is ready (/readyz)
once it has caught up with its district work logs (`CaughtUp`). Stopping is `Worker.stop`, one sequence under the
grace timer.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust
import structlog
from aiokafka import TopicPartition
from faust.app.base import BootStrategy

from processors.catalogue import Catalogue
from processors.geography import Geography
from processors.register import UnitRegister
from streams import __version__
from streams.pipeline.district_log import DistrictLog
from streams.pipeline.pipeline import DistrictPipeline
from streams.pipeline.register import RegisterFollower
from streams.pipeline.snapshots import SnapshotStore
from streams.pipeline.unit_districts import UnitDistricts
from streams.runtime import health, metrics
from streams.runtime.clock import platform_clock
from streams.runtime.consumer_loop import SHUTDOWN_GRACE_S, ConsumerLoop, exit_if_not_stopped_in
from streams.runtime.error_policy import describe
from streams.runtime.topics import snapshots_topic, unit_districts_topic, worklog_topic
from streams.settings import Settings
from streams.sink.sink import Sink

log = structlog.get_logger("patrol.worker")

# the consumer loop of intake and the district core, as named in logs, health and metrics
PIPELINE = "district-pipeline"
# how often the owner looks for partitions due a snapshot (the settings say when one is)
SNAPSHOT_CHECK_S = 5.0


class WithoutKafka(BootStrategy):
    """faust's services without its Kafka consumer, producer, topic conductor and tables (the consumer loop and
    the sink have clients of their own, streams/runtime/clients.py), its web server (health.py serves the
    endpoints) and its sensors: what is left runs tasks and timers, and stops them."""

    enable_kafka = False
    enable_kafka_consumer = False
    enable_kafka_producer = False
    enable_web = False
    enable_sensors = False


class RuntimeApp(faust.App):
    BootStrategy = WithoutKafka


class CaughtUp:
    """The worker's readiness: the district pipeline has its assignment, and has processed each work-log partition
    it owns up to where that log ended when the partition came to it (its districts recovered once assigned,
    the backlog decided)."""

    def __init__(self, districts: DistrictLog, topic: str):
        self.districts = districts
        self.topic = topic
        # owned work-log partition -> where its log ended (the high-water mark of the first fetch); None: no
        # assignment (before the first, during a rebalance, while the loop restarts)
        self.ends: dict[int, int | None] | None = None

    def __call__(self, consumer) -> tuple[bool, str]:
        if self.ends is None or consumer is None:
            return False, "the district pipeline has no partitions assigned yet"
        behind = []
        for partition, end in self.ends.items():
            if end is None:
                end = self.ends[partition] = consumer.highwater(TopicPartition(self.topic, partition))
            cores = self.districts.partitions.get(partition)
            if end is None or (end > 0 and (cores is None or cores.next_offset < end)):
                behind.append(partition)
        if behind:
            return False, f"catching up with work-log partitions {behind}"
        return True, f"caught up with work-log partitions {sorted(self.ends)}"


class Worker:
    """What a worker process runs: the district pipeline on its consumer loop, the unit register it follows, the
    sink (if it runs here), the owner's timers, and the stop sequence. `register` is the unit register file's,
    before the changes on unit.register (followed: streams/pipeline/register.py)."""

    def __init__(self, settings: Settings, catalogue: Catalogue, geography: Geography, register: UnitRegister):
        self.settings = settings
        worklog = worklog_topic(settings)
        self.unit_districts = UnitDistricts(settings, unit_districts_topic(settings))
        self.register = RegisterFollower(settings, register)
        self.known_streets = frozenset(geography.by_code)
        self.known_agencies = frozenset(a for c in catalogue.categories for a in c.agencies)
        self.circle = metrics.ServiceCircle(geography, catalogue)
        self.districts = DistrictLog(settings, worklog, catalogue, SnapshotStore(settings, snapshots_topic(settings)),
                                     group_id=pipeline_group(settings), loop=PIPELINE)
        self.pipeline = DistrictPipeline(settings, catalogue, geography, self.districts, self.unit_districts,
                                         self.register, clock=platform_clock(settings))
        if settings.clock_rate != 1.0:
            # never meant for a district on duty: say so where whoever runs it will look
            log.warning("the clock runs faster than the wall clock: a simulated day only", rate=settings.clock_rate,
                        epoch=str(settings.clock_epoch))
        self.caught_up = CaughtUp(self.districts, worklog)
        # one consumer for the inbound topics and the work log: every consumer polls the broker every fetch wait, and the
        # embedded broker's CPU is as scarce as the worker's
        self.loop = ConsumerLoop(settings, PIPELINE, pipeline_group(settings), self.pipeline.topics_consumed,
                                 self.pipeline.take, on_revoked=self._revoked, on_assigned=self._assigned,
                                 follow={worklog: self.pipeline.take_delivered},
                                 on_unpublishable=self.pipeline.unpublishable,
                                 between_polls=self.districts.take_over)
        self.sink = Sink(settings) if settings.sink_in_worker else None
        self._running: list[asyncio.Task] = []
        health.set_readiness(lambda: self.caught_up(self.loop.consumer))

    def _revoked(self, partitions: list[TopicPartition]) -> None:
        self.pipeline.revoked(partitions)
        self.caught_up.ends = None

    async def _assigned(self, partitions: list[TopicPartition]) -> None:
        self.caught_up.ends = {tp.partition: None for tp in partitions if tp.topic == self.districts.topic}
        await self.pipeline.assigned(partitions)

    async def run_pipeline(self) -> None:
        self._running.append(asyncio.current_task())
        await self.loop.run_forever()

    async def run_sink(self) -> None:
        if self.sink is not None:
            self._running.append(asyncio.current_task())
            await self.sink.run_forever()

    async def stop(self) -> None:
        """The stop sequence, under the grace timer (SHUTDOWN_GRACE_S; past it the process exits, and the next
        owner redoes what was not committed): the consumer loop and the sink stop fetching; each lets the work
        in hand finish, waits for its outputs' delivery (the sink for its rows), commits, and leaves its group;
        then faust stops the timers and tasks."""
        exit_if_not_stopped_in(SHUTDOWN_GRACE_S)
        log.info("stopping: settling in-flight work, committing, leaving the groups", grace_s=SHUTDOWN_GRACE_S)
        self.loop.stop()
        if self.sink is not None:
            self.sink.stop()
        running = [task for task in self._running if not task.done()]
        if running:
            await asyncio.wait(running)
        log.info("stopped: work committed, groups left")

    async def tick(self) -> None:
        # Only the owner of a district's partition ticks it, and only when one of its deadlines is due: one tick
        # stream per district, not one per worker and second. Sent by the consumer loop's producer, as the
        # reports' entries are: with a single writer to a district's log, each entry it writes is the next one
        # due when acknowledged, and none waits to be read back.
        due = self.pipeline.ticks(self.pipeline.clock())
        if due and not await _quietly("tick", self.loop.publish(due)):
            log.debug("tick skipped: the consumer loop is restarting or stopping")

    async def take_snapshots(self) -> None:
        for partition in self.districts.snapshots_due():
            captured = await self.loop.checkpoint(lambda: self.districts.capture(partition))
            if captured is not None:
                await _quietly("snapshot", self.districts.store(partition, *captured))

    def describe(self) -> None:
        # the district log holds exactly the partitions the core loop owns (revoked ones are forgotten)
        metrics.describe_districts(
            (core for cores in list(self.districts.partitions.values()) for core in cores.cores.values()),
            streets=self.known_streets, agencies=self.known_agencies, circle=self.circle)

    def report_progress(self) -> None:
        # one line every half minute: where each district log partition stands, to tell a stall from a lull
        log.info("district logs", positions={p: c.next_offset for p, c in sorted(self.districts.partitions.items())})


def build_app(settings: Settings, catalogue: Catalogue, geography: Geography, datadir: Path,
              register: UnitRegister) -> faust.App:
    """The worker's runtime: a faust app (`datadir`, which faust insists on having and must exist, holds nothing)
    hosting a `Worker`'s tasks and timers, and stopping it first when it stops."""
    worker = Worker(settings, catalogue, geography, register)
    app = RuntimeApp(settings.app_id, store="memory://", datadir=str(datadir), web_enabled=False)

    app.task(worker.register.run_forever)
    app.task(worker.run_pipeline)
    app.task(worker.run_sink)

    @app.task
    async def serve_metrics():
        metrics.WORKER_INFO.labels(settings.app_id, __version__).set(1)
        # /metrics, /healthz and /readyz, answered by this event loop: a stalled one cannot answer
        await health.serve(settings)

    @app.timer(interval=5.0)
    async def describe():
        worker.describe()

    @app.timer(interval=30.0)
    async def report_progress():
        worker.report_progress()

    app.timer(interval=settings.tick_interval_s)(worker.tick)
    app.timer(interval=SNAPSHOT_CHECK_S)(worker.take_snapshots)

    @app.on_before_shutdown.connect
    async def stop_worker(app, **kwargs):
        # before faust cancels its tasks: the loops finish their work and commit it
        await worker.stop()

    return app


async def _quietly(what: str, work):
    """A timer's work: a failure (the broker away) is said and waited out, since the next round does it again;
    left to faust, it would stop the worker."""
    try:
        return await work
    except Exception as exc:  # noqa: BLE001 - see above
        log.warning(f"{what} failed; tried again at the next round", error=describe(exc))
        return None


def pipeline_group(settings: Settings) -> str:
    """The consumer group of intake and the district core (the district log's committed offsets)."""
    return f"{settings.app_id}-pipeline"
