"""The PostgreSQL sink: incident events, dispatch orders, escalations and dead letters into the audit tables, and
reporters and descriptions into the incident records, batched and idempotent.

Offsets are committed only after the batch's rows are in the database, so a
crash or a database outage can re-deliver a batch but never skip one; the
primary keys make the re-delivery a no-op. A message whose rows the database
refuses for what they hold is dead-lettered, and the rest of its batch written.

Its loop reports to streams/runtime/health.py as "sink": progress after each write and
each empty poll, work while records are in hand (also while their write keeps
failing); it is ready while it has partitions and reaches PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from processors.incidents import STATUS_AFTER
from processors.messages import DeadLetter, DispatchOrder, Escalation, IncidentEvent, ReporterRecord
from processors.dead_letters import Rejected, bare_provenance, dead_letter
from streams.runtime import health, metrics
from streams.sink.retention import Periodic
from streams.runtime.error_policy import describe, refused_for_content
from streams.runtime import clients
from streams.runtime.clients import group_consumer
from streams.runtime.consumer_loop import restart_on_failure
from streams.settings import Settings
from streams.runtime.topics import INCIDENT_REPORTS_DLQ, Topics, reporters_topic

log = structlog.get_logger("patrol.sink")


def _rows(model: type):
    """A Batch field collecting the messages of `model` (the topic registry says which topic carries it)."""
    return field(default_factory=list, metadata={"model": model})


@dataclass
class Batch:
    events: list[IncidentEvent] = _rows(IncidentEvent)
    dead_letters: list[DeadLetter] = _rows(DeadLetter)
    orders: list[DispatchOrder] = _rows(DispatchOrder)
    escalations: list[Escalation] = _rows(Escalation)
    reporters: list[ReporterRecord] = _rows(ReporterRecord)
    # the consumed record each message came from, in the order they were added
    records: list = field(default_factory=list)

    def __len__(self) -> int:
        return (len(self.events) + len(self.dead_letters) + len(self.orders) + len(self.escalations)
                + len(self.reporters))

    def add(self, message, record=None) -> None:
        getattr(self, _FIELD_OF[type(message)]).append(message)
        self.records.append((record, message))

    def halves(self) -> tuple["Batch", "Batch"]:
        """The messages in two batches, the first half and the rest (for finding the one the database refuses)."""
        first, rest = Batch(), Batch()
        middle = len(self.records) // 2
        for i, (record, message) in enumerate(self.records):
            (first if i < middle else rest).add(message, record)
        return first, rest


# message model -> the Batch field its rows collect in (declared with the field)
_FIELD_OF = {f.metadata["model"]: f.name for f in fields(Batch) if "model" in f.metadata}


# The advisory lock class of "an incident's reporter is being written" (its second key: the report id's hash).
REPORTER_LOCK = 0x7265_706F  # "repo"


async def write_batch(connection: asyncpg.Connection, batch: Batch) -> None:
    # read committed whatever the server's default: once a report's lock is ours, each statement must see what
    # the sink that held it before committed (migration 0008 says why)
    async with connection.transaction(isolation="read_committed"):
        reporters = [_reporter_row(r) for r in batch.reporters] + _old_reporter_rows(batch.events)
        await _lock_reports(connection, [row[0] for row in reporters]
                            + [e.data.get("report_id") for e in batch.events if e.type == "created"])
        if reporters:
            await connection.executemany(
                """INSERT INTO reporters (report_id, reporter, description, received_at)
                   VALUES ($1, $2::jsonb, $3, $4) ON CONFLICT DO NOTHING""", reporters)
        await _write_events(connection, batch.events)
        if batch.reporters:
            # the incidents created before their reporter and description came (the first report's, as the
            # insert takes them)
            await connection.execute(
                """UPDATE incidents i SET reporter = coalesce(i.reporter, r.reporter),
                                          description = coalesce(i.description, r.description)
                   FROM reporters r
                   WHERE r.report_id = ANY($1::text[]) AND i.report_id = r.report_id
                     AND ((i.reporter IS NULL AND r.reporter IS NOT NULL)
                          OR (i.description IS NULL AND r.description IS NOT NULL))""",
                [r.report_id for r in batch.reporters])
        await _write_orders_and_the_rest(connection, batch)
    metrics.SINK_ROWS.labels("incident_events").inc(len(batch.events))
    metrics.SINK_ROWS.labels("escalations").inc(len(batch.escalations))
    metrics.SINK_ROWS.labels("dispatch_orders").inc(len(batch.orders))
    metrics.SINK_ROWS.labels("dead_letters").inc(len(batch.dead_letters))
    metrics.SINK_ROWS.labels("reporters").inc(len(batch.reporters))


async def _write_events(connection: asyncpg.Connection, events: list[IncidentEvent]) -> None:
    """The events into the audit trail; a `created` makes the incident record, the others move its status."""
    if not events:
        return
    await connection.executemany(
        """INSERT INTO incident_events (event_id, incident_id, seq, type, at, data)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb) ON CONFLICT DO NOTHING""",
        [(e.event_id, e.incident_id, e.seq, e.type, e.at, json.dumps(_without_private(e.data)))
         for e in events],
    )
    created = [e for e in events if e.type == "created"]
    if created:
        await connection.executemany(
            """INSERT INTO incidents (incident_id, report_id, category, domain, priority, district,
                   street, lat, lon, source, address, description, reporter, reported_at,
                   created_at, status, status_at, last_seq)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
                       coalesce($12, (SELECT description FROM reporters WHERE report_id = $2)),
                       (SELECT reporter FROM reporters WHERE report_id = $2),
                       $13::text::timestamptz, $14, 'created', $14, $15)
               ON CONFLICT DO NOTHING""",
            [_incident_row(e) for e in created],
        )
    moves = [e for e in events if e.type in STATUS_AFTER and e.type != "created"]
    if moves:
        await connection.executemany(
            """UPDATE incidents SET status = $2, status_at = $3, last_seq = $4
               WHERE incident_id = $1 AND last_seq < $4""",
            [(e.incident_id, STATUS_AFTER[e.type], e.at, e.seq) for e in moves],
        )


async def _write_orders_and_the_rest(connection: asyncpg.Connection, batch: Batch) -> None:
    """Dead letters, dispatch orders and escalations into their tables."""
    if batch.dead_letters:
        await connection.executemany(
            """INSERT INTO dead_letters (topic, "partition", "offset", reason, error, raw, raw_encoding,
                   raw_masked, key, received_at, raw_truncated, raw_length, raw_sha256)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING""",
            [
                (d.topic, d.partition, d.offset, d.reason, d.error, d.raw, d.raw_encoding, d.raw_masked, d.key,
                 d.received_at, d.raw_truncated, d.raw_length, d.raw_sha256)
                for d in batch.dead_letters
            ],
        )
    if batch.orders:
        await connection.executemany(
            """INSERT INTO dispatch_orders (order_id, kind, incident_id, unit_id, role, agency, category,
                   priority, eta_s, ack_by, issued_at, joint_with)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING""",
            [(o.order_id, o.kind, o.incident_id, o.unit_id, o.role, o.agency, o.category, o.priority,
              o.eta_s, o.ack_by, o.issued_at, o.joint_with) for o in batch.orders],
        )
    if batch.escalations:
        await connection.executemany(
            """INSERT INTO escalations (escalation_id, incident_id, level, reason, deadline, at, district,
                   street, category)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING""",
            [(e.escalation_id, e.incident_id, e.level, e.reason, e.deadline, e.at, e.district, e.street,
              e.category) for e in batch.escalations],
        )


async def _lock_reports(connection: asyncpg.Connection, report_ids: list) -> None:
    """Take the reporter lock of each report (a created event's, a reporter's), until the transaction ends.
    Every sink takes its locks first and in one order, so two sinks never wait on each other in a circle (were
    they to, PostgreSQL would end one transaction as deadlocked, and its batch be written again)."""
    ids = sorted({i for i in report_ids if isinstance(i, str)})
    if ids:
        # volatile functions of the select list are evaluated after the sort: the locks are taken in key order
        await connection.execute(
            """SELECT pg_advisory_xact_lock($1, k)
               FROM (SELECT DISTINCT hashtext(id) AS k FROM unnest($2::text[]) AS id) AS keys ORDER BY k""",
            REPORTER_LOCK, ids)


def _refusal(exc: Exception) -> str:
    """Why the database refused a row, without the refused value: it may be a reporter's name or phone."""
    text = str(exc)
    # asyncpg's own check of an argument ("invalid input for query argument $3: 3000000000 (value out of int32
    # range)") and the server's (... "value" ...) both quote what was refused
    text = re.sub(r"(query argument \$\d+)(?: in element #\d+ of executemany\(\) sequence)?: .*? \(", r"\1 (", text)
    text = re.sub(r'"[^"]*"', '"…"', text)
    if not isinstance(exc, asyncpg.PostgresError):
        # its rows could not be made or encoded (a field missing or of the wrong type for its column)
        return f"its row cannot be made: {type(exc).__name__}: {text[:300]}"
    column = f", column {exc.column_name}" if getattr(exc, "column_name", None) else ""
    return f"PostgreSQL refused its row: {type(exc).__name__} (SQLSTATE {exc.sqlstate}{column}): {text[:300]}"


def _without_private(data: dict) -> dict:
    # a created event written before reporters and descriptions travelled apart holds them; their place is the
    # incident record (and the reporters table)
    return {k: v for k, v in data.items() if k not in ("reporter", "description")}


def _reporter_row(record: ReporterRecord) -> tuple:
    reporter = record.reporter.model_dump_json(exclude_none=True) if record.reporter is not None else None
    return record.report_id, reporter, record.description, record.received_at


def _old_reporter_rows(events: list[IncidentEvent]) -> list[tuple]:
    """The reporters in `created` events written before reporters travelled on a topic of their own (such events
    stay on incident.events for its retention): kept as any other, so their incidents get them too."""
    return [(e.data["report_id"], json.dumps(e.data["reporter"]), e.data.get("description"), e.at)
            for e in events if e.type == "created" and e.data.get("reporter")]


def _incident_row(e: IncidentEvent) -> tuple:
    d = e.data
    return (
        e.incident_id, d["report_id"], d["category"], d.get("domain"), d["priority"], d["district"],
        d["street"], d["lat"], d["lon"], d.get("source"), d.get("address"), d.get("description"),
        d.get("reported_at"), e.at, e.seq,
    )


# the sink's name as a loop (health, restarts)
LOOP = "sink"
# how often an idle sink asks PostgreSQL whether it answers (for readiness), and how long it waits for the answer
REACH_EVERY_S, REACH_TIMEOUT_S = 5.0, 5.0



class Sink:
    """Consumes the audit topics and the reporters with its own consumer group and writes them to PostgreSQL."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.group_id = f"{settings.app_id}-sink"
        # topic -> the message model on it (the registry's audited topics): the audit topics, and the reporters on
        # their way to the incident record
        topics = Topics(settings)
        self.models = {name: topics.model_of(name) for name in topics.audited()}
        self._stopping = asyncio.Event()
        self._consumer = None  # while running: whether it has partitions
        self._reached_database = False  # the last write or ping reached PostgreSQL
        self._failing_since: float | None = None  # when the batch in hand first failed to write (monotonic)
        metrics.SINK_WRITE_FAILING.set_function(self._failing_for)
        self.retention = Periodic(settings)  # reporters' personal data erased once expired

    async def run_forever(self) -> None:
        """Run the sink; if it fails, start it again after a pause (its offsets guarantee nothing is skipped)."""
        await restart_on_failure(self.run, "sink", self._stopping, loop=LOOP)

    def ready(self) -> tuple[bool, str]:
        """The sink's readiness (/readyz): it has partitions of the audit topics and reaches PostgreSQL."""
        consumer = self._consumer
        if consumer is None or not consumer.assignment():
            return False, "the sink has no partitions assigned yet"
        if not self._reached_database:
            return False, "PostgreSQL does not answer the sink"
        return True, f"writing {len(consumer.assignment())} partitions to PostgreSQL"

    def _failing_for(self) -> float:
        return 0.0 if self._failing_since is None else time.monotonic() - self._failing_since

    async def run(self) -> None:
        s = self.settings
        consumer = group_consumer(s, self.group_id, *self.models, fetch_max_wait_ms=s.sink_flush_ms)
        producer = clients.producer(s)
        # min_size=0: no connection is made up front, so a database that is down when the
        # worker starts is waited for like any other outage, by the write retries below
        pool = await asyncpg.create_pool(s.database_url, min_size=0, max_size=2)
        await producer.start()
        await consumer.start()
        self._consumer = consumer
        log.info("sink started", group=self.group_id)
        loop = asyncio.get_running_loop()
        written, last_said, last_measured, last_reached = 0, loop.time(), 0.0, 0.0
        try:
            while not self._stopping.is_set():
                records = await consumer.getmany(timeout_ms=s.sink_flush_ms, max_records=s.sink_batch_size)
                health.working(LOOP, bool(records))  # records in hand until they are written
                if loop.time() - last_measured > 5:
                    await metrics.measure_lag(self.group_id, consumer)
                    last_measured = loop.time()
                if loop.time() - last_said > 30:
                    # a line every half minute, so that a stalled sink can be told from an idle one
                    log.info("sink progress", rows_written=written, assigned=len(consumer.assignment()))
                    last_said = loop.time()
                if not records:
                    health.progress(LOOP)
                    if loop.time() - last_reached > REACH_EVERY_S:
                        await self._reach(pool)
                        last_reached = loop.time()
                    await self.retention.when_due(pool)
                    continue
                batch = Batch()
                for tp_records in records.values():
                    for record in tp_records:
                        await self._collect(record, batch, producer)
                await self._write_until_done(pool, batch, producer)
                await consumer.commit()
                health.progress(LOOP)
                written += len(batch)
                last_reached = loop.time()
        finally:
            self._consumer = None
            await consumer.stop()
            await producer.stop()
            await pool.close()

    def stop(self) -> None:
        self._stopping.set()

    async def _reach(self, pool: asyncpg.Pool) -> None:
        """Whether PostgreSQL answers, asked while the sink idles (a write tells it otherwise)."""
        try:
            await asyncio.wait_for(pool.fetchval("SELECT 1"), REACH_TIMEOUT_S)
            self._reached_database = True
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError) as exc:
            if self._reached_database:
                log.warning("PostgreSQL does not answer the sink", error=f"{type(exc).__name__}: {exc}")
            self._reached_database = False

    async def _collect(self, record, batch: Batch, producer: AIOKafkaProducer) -> None:
        try:
            batch.add(self.models[record.topic].model_validate_json(record.value or b""), record)
        except ValidationError as exc:
            await self._set_aside(record, Rejected(
                "sink_invalid", f"not a valid {record.topic} message: {exc.error_count()} errors"), batch, producer)

    async def _set_aside(self, record, rejection: Rejected, batch: Batch, producer: AIOKafkaProducer) -> None:
        """Dead-letter a record the sink cannot write; it stays on its topic as well."""
        # a reporters record is personal data through and through: its letter points to it, with none of its bytes
        origin = bare_provenance(record) if record.topic == reporters_topic(self.settings) else record
        letter = dead_letter(origin, rejection, datetime.now(timezone.utc))
        metrics.DEAD_LETTERS.labels("sink", letter.reason).inc()
        log.warning("dead-lettered", stage="sink", reason=rejection.reason, error=rejection.error[:300],
                    topic=record.topic, partition=record.partition, offset=record.offset)
        if record.topic == INCIDENT_REPORTS_DLQ:
            # a dead letter the sink cannot take is kept as a row instead of looping it back to its own topic
            batch.add(letter)
        else:
            await producer.send_and_wait(INCIDENT_REPORTS_DLQ, letter.to_json_bytes(), key=record.key)

    async def _write_until_done(self, pool: asyncpg.Pool, batch: Batch, producer: AIOKafkaProducer) -> None:
        delay = 0.2
        while True:
            started = asyncio.get_running_loop().time()
            try:
                await self._write(pool, batch, producer)
                metrics.SINK_BATCH_SECONDS.observe(asyncio.get_running_loop().time() - started)
                self._failing_since, self._reached_database = None, True
                return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError) as exc:
                # The rows must land before the offsets move, so we wait for the database however long it takes
                # (patrol_sink_write_failing_seconds says how long; /healthz fails after the stall limit).
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                self._reached_database = False
                metrics.SINK_RETRIES.inc()
                log.warning("sink write failed; retrying", error=str(exc), retry_in_s=delay, rows=len(batch))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _write(self, pool: asyncpg.Pool, batch: Batch, producer: AIOKafkaProducer) -> None:
        """Write the batch; if the database refuses a row for its content, find the messages it refuses by halving
        the batch, dead-letter those and write the rest (each half is one transaction, and every write
        idempotent, so halves already written when an outage strikes are written again harmlessly)."""
        try:
            async with pool.acquire() as connection:
                await write_batch(connection, batch)
            return
        except Exception as exc:  # noqa: BLE001 - sorted by the error policy: wait it out, or set the row aside
            if not refused_for_content(exc):
                raise
            if len(batch.records) > 1:
                for half in batch.halves():
                    if half.records:
                        await self._write(pool, half, producer)
                return
            (record, message), = batch.records
            refusal = Rejected("sink_refused", _refusal(exc))
            if record is None:
                # nothing to dead-letter it as (a dead letter of the sink's own making): said, and dropped
                log.error("a dead letter of the sink's own was refused", error=describe(exc))
                return
            rest = Batch()
            await self._set_aside(record, refusal, rest, producer)
            if rest.records:
                await self._write(pool, rest, producer)
