"""The worker: a faust app binding intake and the district cores to their topics, plus (unless it runs on its own,
`patrol sink`) the PostgreSQL sink.

intake (incident.reports, unit.events) ─> district work log ─> district core ─> orders, events, escalations
                      ├─ reporters (personal data) ─> <app id>-reporters ─> sink ─> the incident record
                      └─ bad input ─> incident.reports.dlq      (and dead letters of its own)

Intake and the district core are one consumer loop (streams/runtime/consumer_loop.py, which says why); the faust
app hosts it, the sink, the clock ticks, the metrics timers and the health endpoints (streams/runtime/health.py). The
worker is ready (/readyz) once it has caught up with its district work logs (`CaughtUp`).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import faust
import structlog
from aiokafka import TopicPartition

from processors.catalogue import Catalogue
from processors.geography import Geography
from processors.dead_letters import Rejected, bare_dead_letter, dead_letter
from processors.command_intake import admit_command
from processors.intake import Inbound, Limits, admit_report, admit_unit_event, reporter_of
from processors.messages import (
    DeadLetter,
    DispatchOrder,
    Escalation,
    IncidentEvent,
    LogOff,
    LogOn,
    Message,
    Provenance,
    ReporterRecord,
    WorkItem,
)
from streams import __version__
from streams.runtime import health, metrics
from streams.runtime.consumer_loop import SHUTDOWN_GRACE_S, ConsumerLoop, Outgoing, exit_if_not_stopped_in
from streams.runtime.error_policy import describe, is_transient, unpublishable
from processors.register import UnitRegister
from streams.pipeline.district_log import DistrictLog
from streams.pipeline.register import RegisterFollower
from streams.pipeline.snapshots import SnapshotStore
from streams.pipeline.unit_districts import UnitDistricts
from streams.settings import Settings
from streams.sink.sink import Sink
from streams.runtime.topics import (
    DISPATCH_COMMANDS,
    DISPATCH_ORDERS,
    INCIDENT_EVENTS,
    INCIDENT_REPORTS,
    INCIDENT_REPORTS_DLQ,
    SLA_ESCALATIONS,
    UNIT_EVENTS,
    reporters_topic,
    snapshots_topic,
    unit_districts_topic,
    worklog_topic,
)

log = structlog.get_logger("patrol.worker")

# the consumer loop of intake and the district core, as named in logs, health and metrics
PIPELINE = "district-pipeline"
# how often the owner looks for partitions due a snapshot (the settings say when one is)
SNAPSHOT_CHECK_S = 5.0


def route(message: Message) -> tuple[str, str | None]:
    """The topic and key each kind of core output is published under (docs/contracts.md, Topics)."""
    if isinstance(message, IncidentEvent):
        return INCIDENT_EVENTS, message.incident_id
    if isinstance(message, DispatchOrder):
        return DISPATCH_ORDERS, message.unit_id
    if isinstance(message, Escalation):
        return SLA_ESCALATIONS, message.incident_id
    if isinstance(message, DeadLetter):
        return INCIDENT_REPORTS_DLQ, message.key
    raise TypeError(f"no topic for {type(message).__name__}")


def broker_credentials(settings: Settings):
    """faust's form of Settings.kafka_client_options(): made from those options, so the worker's clients and all
    our others share one TLS context recipe (Settings.ssl_context) and one SASL mapping."""
    options = settings.kafka_client_options()
    protocol = options["security_protocol"]
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(options["ssl_context"])
    # faust derives SASL_SSL from the presence of the context, SASL_PLAINTEXT from its absence
    return faust.SASLCredentials(
        username=options["sasl_plain_username"],
        password=options["sasl_plain_password"],
        mechanism=options["sasl_mechanism"],
        ssl_context=options.get("ssl_context"),
    )


class ShutdownBoundWorker(faust.Worker):
    """faust's worker, except that stopping cannot hang: with the broker gone, faust's shutdown waits on it
    for ever; after the grace period the process exits (uncommitted work is redone by the next owner)."""

    def on_worker_shutdown(self) -> None:
        exit_if_not_stopped_in(SHUTDOWN_GRACE_S)


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


def build_app(settings: Settings, catalogue: Catalogue, geography: Geography, datadir: Path,
              register: UnitRegister) -> faust.App:
    """The worker's faust app; `datadir` is the directory faust insists on having (it keeps nothing in it:
    tables are in memory), which must exist. `register` is the unit register file's, before the changes on
    unit.register (followed here: streams/pipeline/register.py)."""
    # faust's own consumer carries nothing on the dispatch path (the consumer loop does), so it keeps
    # faust's long fetch wait: polling the broker every few milliseconds for nothing costs both CPU
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=broker_credentials(settings),
        store="memory://",
        datadir=str(datadir),
        web_enabled=False,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_heartbeat_interval=settings.kafka_session_timeout_s / 5,
        broker_commit_every=100,
        broker_commit_interval=1.0,
    )
    limits = Limits(max_bytes=settings.max_report_bytes, future_skew=timedelta(seconds=settings.future_skew_s))
    worklog_name = worklog_topic(settings)
    reporters_name = reporters_topic(settings)
    unit_districts = UnitDistricts(settings, unit_districts_topic(settings))
    snapshots = SnapshotStore(settings, snapshots_topic(settings))
    districts = DistrictLog(settings, worklog_name, catalogue, snapshots, group_id=pipeline_group(settings),
                            loop=PIPELINE)
    caught_up = CaughtUp(districts, worklog_name)
    units_register = RegisterFollower(settings, register)
    known_streets = frozenset(geography.by_code)
    known_agencies = frozenset(a for c in catalogue.categories for a in c.agencies)

    def domain_of(code: str) -> str:
        category = catalogue.get(code)
        return category.domain if category else "unknown"

    def outgoing(message: Message) -> Outgoing:
        topic, key = route(message)
        return topic, key.encode() if key else None, message.to_json_bytes()

    def forward(item: WorkItem) -> Outgoing:
        return worklog_name, item.district.encode(), item.model_dump_json(exclude_none=True).encode()

    def pass_on(reporter: ReporterRecord) -> Outgoing:
        return reporters_name, reporter.report_id.encode(), reporter.model_dump_json(exclude_none=True).encode()

    def reject(record: Inbound | Provenance, rejection: Rejected, stage: str) -> Outgoing:
        metrics.DEAD_LETTERS.labels(stage, rejection.reason).inc()
        log.info("dead-lettered", stage=stage, reason=rejection.reason, topic=record.topic,
                 partition=record.partition, offset=record.offset)
        return outgoing(dead_letter(record, rejection, datetime.now(timezone.utc)))

    def guarded(stage: str, handle):
        """One record's handling; a defect of ours dead-letters that record instead of stopping the stream
        (a failure of the broker restarts the loop instead, and the record comes again)."""
        async def handle_guarded(record) -> list[Outgoing]:
            try:
                return await handle(record)
            except Exception as exc:  # noqa: BLE001 - the last line of defence: nothing may stop the stream
                if is_transient(exc):
                    raise
                return [failed(record, stage, exc)]
        return handle_guarded

    def failed(record, stage: str, exc: Exception) -> Outgoing:
        rejection = Rejected("processing_error", describe(exc))
        # the traceback without its frames' variables: they hold the message, and with it personal data
        log.error("processing failed; message dead-lettered", stage=stage, topic=record.topic,
                  partition=record.partition, offset=record.offset, error=rejection.error, exc_info=exc)
        try:
            return reject(_origin(record), rejection, stage)
        except Exception as again:  # noqa: BLE001 - the fallback that reads nothing of the record
            log.error("its dead letter failed too; a bare one is written", error=describe(again))
            metrics.DEAD_LETTERS.labels(stage, rejection.reason).inc()
            letter = bare_dead_letter(record.topic, record.partition, record.offset, rejection,
                                      datetime.now(timezone.utc))
            return INCIDENT_REPORTS_DLQ, None, letter.to_json_bytes()

    async def take_report(record) -> list[Outgoing]:
        inbound = _inbound(record)
        metrics.observe_intake_wait(record.timestamp, inbound.received_at)
        admitted = admit_report(inbound, catalogue, geography, limits)
        if isinstance(admitted, Rejected):
            metrics.REPORTS.labels("unknown", "rejected").inc()
            return [reject(inbound, admitted, "intake")]
        metrics.REPORTS.labels(admitted.item.report.source, "admitted").inc()
        # both for the same consumed record, committed once both are delivered: at least once for each
        return [forward(admitted.item)] + ([pass_on(admitted.reporter)] if admitted.reporter else [])

    async def take_unit_event(record) -> list[Outgoing]:
        inbound = _inbound(record)
        key = (inbound.key or b"").decode("utf-8", "replace")
        if not units_register.ready.is_set():
            # a log-on is judged by the register with every change made at run time, not by the file alone
            await units_register.ready.wait()
        admitted = admit_unit_event(inbound, geography, limits, unit_districts.get(key) if key else None,
                                    units_register.register)
        if isinstance(admitted, Rejected):
            metrics.UNIT_EVENTS.labels("unknown", "rejected").inc()
            return [reject(inbound, admitted, "intake")]
        unit_event = admitted.unit_event
        if unit_event.unit_id != key:
            # unit.events is keyed by unit so that a unit's events stay in order on one partition; a
            # mis-keyed one could overtake the unit's others (or they it) on the way to the core
            rejection = Rejected("key_mismatch", f"message key {key!r} is not the unit_id {unit_event.unit_id!r}")
            return [reject(inbound, rejection, "intake")]
        out = [forward(admitted)]
        if isinstance(unit_event, LogOn):
            out.append(unit_districts.record(key, unit_event.district))
        elif isinstance(unit_event, LogOff):
            out.append(unit_districts.record(key, None))
        metrics.UNIT_EVENTS.labels(unit_event.type, "admitted").inc()
        return out

    async def take_command(record) -> list[Outgoing]:
        # a dispatcher's command from the command API: into its district's work log, decided by the core there
        admitted = admit_command(_inbound(record), geography, limits)
        if isinstance(admitted, Rejected):
            return [reject(_inbound(record), admitted, "intake")]
        return [forward(admitted)]

    async def decide(record) -> list[Outgoing]:
        if districts.processed(record.partition, record.offset):
            return []  # taken when the broker acknowledged it (decide_delivered), or handed to us again
        out: list[Outgoing] = []
        try:
            item = WorkItem.model_validate_json(record.value or b"")
        except ValueError as exc:
            item = None
            out.append(reject(_inbound(record), Rejected("invalid_work_item", f"unreadable work-log entry: {exc}"),
                              "core"))
        if item is not None and item.report is not None and (old := reporter_of(item.report, item.at)):
            # an entry written before reporters left the work log: its reporter goes the way intake's now go
            # (the core ignores it), so that an upgrade loses none of those still to be decided
            out.append(pass_on(old))
        outputs = await districts.apply(record.partition, record.offset, item)
        now = datetime.now(timezone.utc)
        for source, output in outputs:
            metrics.observe(output, source, now, domain_of)
            out.append(outgoing(output))
        return out

    async def decide_delivered(record) -> list[Outgoing]:
        # one of our own work-log entries, where the broker placed it: taken now if it is the next one due
        # (no other writer's entry still to be read before it), else when the consumer hands it over
        if not districts.due(record.partition, record.offset):
            return []
        return await decide(record)

    handlers = {INCIDENT_REPORTS: guarded("intake", take_report), UNIT_EVENTS: guarded("intake", take_unit_event),
                DISPATCH_COMMANDS: guarded("intake", take_command), worklog_name: guarded("core", decide)}

    async def take(record) -> list[Outgoing]:
        if record.topic == UNIT_EVENTS and unit_districts.stale:
            # what the units' previous owners learned, read before their first event after an assignment;
            # a failure here restarts the loop, and the event comes again
            await unit_districts.load()
        return await handlers[record.topic](record)

    def revoked(partitions) -> None:
        districts.forget({tp.partition for tp in partitions if tp.topic == worklog_name})
        caught_up.ends = None

    async def assigned(partitions) -> None:
        caught_up.ends = {tp.partition: None for tp in partitions if tp.topic == worklog_name}
        if any(tp.topic == UNIT_EVENTS for tp in partitions):
            unit_districts.stale = True
        districts.assigned(set(caught_up.ends))

    # one consumer for the three topics: every consumer polls the broker every fetch wait, and the
    # embedded broker's CPU is as scarce as the worker's
    pipeline = ConsumerLoop(settings, PIPELINE, pipeline_group(settings),
                            (INCIDENT_REPORTS, UNIT_EVENTS, DISPATCH_COMMANDS, worklog_name), take, on_revoked=revoked,
                            on_assigned=assigned, follow={worklog_name: guarded("core", decide_delivered)},
                            on_unpublishable=lambda record, exc: (INCIDENT_REPORTS_DLQ, None, unpublishable(record, exc)),
                            between_polls=districts.take_over)
    health.set_readiness(lambda: caught_up(pipeline.consumer))

    @app.task
    async def follow_register():
        await units_register.run_forever()

    @app.task
    async def run_pipeline():
        await pipeline.run_forever()

    @app.timer(interval=5.0)
    async def describe():
        # the district log holds exactly the partitions the core loop owns (revoked ones are forgotten)
        metrics.describe_districts(
            (core for cores in list(districts.partitions.values()) for core in cores.cores.values()),
            streets=known_streets, agencies=known_agencies)

    @app.timer(interval=30.0)
    async def report_progress():
        # one line every half minute: where each district log partition stands, to tell a stall from a lull
        log.info("district logs", positions={p: c.next_offset for p, c in sorted(districts.partitions.items())})

    @app.timer(interval=settings.tick_interval_s)
    async def tick():
        # Only the owner of a district's partition ticks it, and only when one of its deadlines is due: one tick
        # stream per district, not one per worker and second. Sent by the consumer loop's producer, as the
        # reports' entries are: with a single writer to a district's log, each entry it writes is the next one
        # due when acknowledged, and none waits to be read back.
        now = datetime.now(timezone.utc)
        due = districts.needing_tick(now)
        if due and not await _quietly("tick", pipeline.publish(
                [forward(WorkItem(kind="tick", district=district, at=now)) for district in due])):
            log.debug("tick skipped: the consumer loop is restarting")

    @app.timer(interval=SNAPSHOT_CHECK_S)
    async def take_snapshots():
        for partition in districts.snapshots_due():
            captured = await pipeline.checkpoint(lambda: districts.capture(partition))
            if captured is not None:
                await _quietly("snapshot", districts.store(partition, *captured))

    if settings.sink_in_worker:
        sink = Sink(settings)

        @app.task
        async def run_sink():
            await sink.run_forever()

    @app.task
    async def serve_metrics():
        metrics.WORKER_INFO.labels(settings.app_id, __version__).set(1)
        # /metrics, /healthz and /readyz, answered by this event loop: a stalled one cannot answer
        await health.serve(settings)

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


def _origin(record) -> Inbound | Provenance:
    """The inbound record a message stems from: for a work-log entry, the report or unit event inside it."""
    try:
        item = WorkItem.model_validate_json(record.value or b"")
    except ValueError:
        return _inbound(record)
    return item.provenance or _inbound(record)


def _inbound(record) -> Inbound:
    """A consumed record (faust's message or aiokafka's: both carry these fields) as intake sees it."""
    return Inbound(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        received_at=datetime.now(timezone.utc),
    )
