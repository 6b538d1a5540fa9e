"""The district pipeline: intake and the district cores as one object whose handlers turn one consumed record into
the records to publish (`Outgoing`), with no Kafka client of their own. The consumer loop
(streams/runtime/consumer_loop.py) feeds it; tests/streams/pipeline/test_pipeline_handlers.py feeds it records by
hand, without a broker.

    incident.reports ── take_report ─────┐                     ┌─> dispatch.orders, incident.events,
    unit.events ────── take_unit_event ──┼─> district work log ─ decide ─┤   sla.escalations (by the topic registry)
    dispatch.commands ─ take_command ────┘                               └─> incident.reports.dlq (bad input)
                                         └─> <app id>-reporters (a report's reporter)

Every handler runs under the named error policy `DeadLetterPolicy` (streams/runtime/error_policy.py): a defect
meeting one record dead-letters that record; a failure of the broker restarts the loop, and the record comes again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog

from processors.catalogue import Catalogue
from processors.command_intake import admit_command
from processors.dead_letters import Rejected, dead_letter
from processors.geography import Geography
from processors.intake import Inbound, Limits, admit_report, admit_unit_event, reporter_of
from processors.messages import LogOff, LogOn, Provenance, WorkItem
from streams.pipeline.district_log import DistrictLog
from streams.pipeline.register import RegisterFollower
from streams.pipeline.unit_districts import UnitDistricts
from streams.runtime import metrics
from streams.runtime.clock import Clock, wall_clock
from streams.runtime.error_policy import DeadLetterPolicy, Outgoing, unpublishable
from streams.runtime.topics import (
    DISPATCH_COMMANDS,
    INCIDENT_REPORTS,
    INCIDENT_REPORTS_DLQ,
    UNIT_EVENTS,
    Topics,
    worklog_topic,
)
from streams.settings import Settings

log = structlog.get_logger("patrol.worker")

class DistrictPipeline:
    """Intake (reports, unit events) and the district cores of the work-log partitions this worker owns."""

    def __init__(self, settings: Settings, catalogue: Catalogue, geography: Geography, districts: DistrictLog,
                 unit_districts: UnitDistricts, register: RegisterFollower, *, clock: Clock = wall_clock):
        self.catalogue = catalogue
        self.geography = geography
        self.districts = districts
        self.unit_districts = unit_districts
        self.register = register
        self.clock = clock
        self.topics = Topics(settings)
        self.worklog = worklog_topic(settings)
        self.limits = Limits(max_bytes=settings.max_report_bytes,
                             future_skew=timedelta(seconds=settings.future_skew_s))
        self.policy = DeadLetterPolicy(self.dead_letter_of)
        self.handlers = {INCIDENT_REPORTS: self.policy.guard("intake", self.take_report),
                         UNIT_EVENTS: self.policy.guard("intake", self.take_unit_event),
                         DISPATCH_COMMANDS: self.policy.guard("intake", self.take_command),
                         self.worklog: self.policy.guard("core", self.decide)}
        # a record this pipeline published to the work log, once the broker placed it (the loop's `follow`)
        self.take_delivered = self.policy.guard("core", self.decide_delivered)

    @property
    def topics_consumed(self) -> tuple[str, ...]:
        return INCIDENT_REPORTS, UNIT_EVENTS, DISPATCH_COMMANDS, self.worklog

    # ------------------------------------------------------------------ the handlers

    async def take(self, record) -> list[Outgoing]:
        """Any consumed record, by its topic."""
        if record.topic == UNIT_EVENTS and self.unit_districts.stale:
            # what the units' previous owners learned, read before their first event after an assignment;
            # a failure here restarts the loop, and the event comes again
            await self.unit_districts.load()
        return await self.handlers[record.topic](record)

    async def take_report(self, record) -> list[Outgoing]:
        inbound = self._inbound(record)
        # published and taken by the wall clock (the record's timestamp is the producer's), whatever the platform's
        metrics.observe_intake_wait(record.timestamp, wall_clock())
        admitted = admit_report(inbound, self.catalogue, self.geography, self.limits)
        if isinstance(admitted, Rejected):
            metrics.REPORTS.labels("unknown", "rejected").inc()
            return [self.reject(inbound, admitted, "intake")]
        metrics.REPORTS.labels(admitted.item.report.source, "admitted").inc()
        # both for the same consumed record, committed once both are delivered: at least once for each
        return [self.topics.outgoing(admitted.item)] + (
            [self.topics.outgoing(admitted.reporter)] if admitted.reporter else [])

    async def take_unit_event(self, record) -> list[Outgoing]:
        inbound = self._inbound(record)
        key = (inbound.key or b"").decode("utf-8", "replace")
        if not self.register.ready.is_set():
            # a log-on is judged by the register with every change made at run time, not by the file alone
            await self.register.ready.wait()
        admitted = admit_unit_event(inbound, self.geography, self.limits,
                                    self.unit_districts.get(key) if key else None, self.register.register)
        if isinstance(admitted, Rejected):
            metrics.UNIT_EVENTS.labels("unknown", "rejected").inc()
            return [self.reject(inbound, admitted, "intake")]
        unit_event = admitted.unit_event
        if unit_event.unit_id != key:
            # unit.events is keyed by unit so that a unit's events stay in order on one partition; a
            # mis-keyed one could overtake the unit's others (or they it) on the way to the core
            rejection = Rejected("key_mismatch", f"message key {key!r} is not the unit_id {unit_event.unit_id!r}")
            return [self.reject(inbound, rejection, "intake")]
        out = [self.topics.outgoing(admitted)]
        if isinstance(unit_event, LogOn):
            out.append(self.unit_districts.record(key, unit_event.district))
        elif isinstance(unit_event, LogOff):
            out.append(self.unit_districts.record(key, None))
        metrics.UNIT_EVENTS.labels(unit_event.type, "admitted").inc()
        return out

    async def take_command(self, record) -> list[Outgoing]:
        # a dispatcher's command from the command API: into its district's work log, decided by the core there
        inbound = self._inbound(record)
        admitted = admit_command(inbound, self.geography, self.limits)
        if isinstance(admitted, Rejected):
            return [self.reject(inbound, admitted, "intake")]
        return [self.topics.outgoing(admitted)]

    async def decide(self, record) -> list[Outgoing]:
        """A work-log entry through its district's core: the core's outputs, each to its topic."""
        if self.districts.processed(record.partition, record.offset):
            return []  # taken when the broker acknowledged it (decide_delivered), or handed to us again
        out: list[Outgoing] = []
        try:
            item = WorkItem.model_validate_json(record.value or b"")
        except ValueError as exc:
            item = None
            out.append(self.reject(self._inbound(record),
                                   Rejected("invalid_work_item", f"unreadable work-log entry: {exc}"), "core"))
        if item is not None and item.report is not None and (old := reporter_of(item.report, item.at)):
            # an entry written before reporters left the work log: its reporter goes the way intake's now go
            # (the core ignores it), so that an upgrade loses none of those still to be decided
            out.append(self.topics.outgoing(old))
        outputs = await self.districts.apply(record.partition, record.offset, item)
        now = self.clock()
        for source, output in outputs:
            metrics.observe(output, source, now, self._domain_of)
            out.append(self.topics.outgoing(output))
        return out

    async def decide_delivered(self, record) -> list[Outgoing]:
        # one of our own work-log entries, where the broker placed it: taken now if it is the next one due
        # (no other writer's entry still to be read before it), else when the consumer hands it over
        if not self.districts.due(record.partition, record.offset):
            return []
        return await self.decide(record)

    def ticks(self, now: datetime) -> list[Outgoing]:
        """The clock ticks due: one work-log entry for each owned district with a deadline due by `now`."""
        return [self.topics.outgoing(WorkItem(kind="tick", district=district, at=now))
                for district in self.districts.needing_tick(now)]

    # ------------------------------------------------------------------ rebalances

    def revoked(self, partitions) -> None:
        self.districts.forget({tp.partition for tp in partitions if tp.topic == self.worklog})

    async def assigned(self, partitions) -> None:
        if any(tp.topic == UNIT_EVENTS for tp in partitions):
            self.unit_districts.stale = True
        self.districts.assigned({tp.partition for tp in partitions if tp.topic == self.worklog})

    # ------------------------------------------------------------------ dead letters

    def reject(self, record: Inbound | Provenance, rejection: Rejected, stage: str) -> Outgoing:
        metrics.DEAD_LETTERS.labels(stage, rejection.reason).inc()
        log.info("dead-lettered", stage=stage, reason=rejection.reason, topic=record.topic,
                 partition=record.partition, offset=record.offset)
        return self.topics.outgoing(dead_letter(record, rejection, self.clock()))

    def dead_letter_of(self, record, rejection: Rejected, stage: str) -> Outgoing:
        """The dead letter of a record whose handling failed: of the report or unit event it stems from."""
        return self.reject(self._origin(record), rejection, stage)

    def unpublishable(self, record, exc: BaseException) -> Outgoing:
        """What to publish for a record whose output the broker refused for good (its bare dead letter)."""
        return INCIDENT_REPORTS_DLQ, None, unpublishable(record, exc)

    # ------------------------------------------------------------------ helpers

    def _domain_of(self, code: str) -> str:
        category = self.catalogue.get(code)
        return category.domain if category else "unknown"

    def _origin(self, record) -> Inbound | Provenance:
        """The inbound record a message stems from: for a work-log entry, the report or unit event inside it."""
        try:
            item = WorkItem.model_validate_json(record.value or b"")
        except ValueError:
            return self._inbound(record)
        return item.provenance or self._inbound(record)

    def _inbound(self, record) -> Inbound:
        """A consumed record as intake sees it."""
        return Inbound(topic=record.topic, partition=record.partition, offset=record.offset, key=record.key,
                       value=record.value, received_at=self.clock())

