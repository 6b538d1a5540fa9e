"""The topic catalogue: every contract topic and our internal ones (district work log, unit map, snapshots,
reporters), created idempotently at start-up; and the registry (`REGISTRY`, `Topics`): which message goes to which
topic under which key, the one table the worker publishes by and the sink reads by."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, TopicAuthorizationFailedError

from processors.messages import (
    DeadLetter,
    DispatchOrder,
    Escalation,
    IncidentEvent,
    DispatcherCommand,
    IncidentReport,
    ReporterRecord,
    WorkItem,
    _UnitEventBase,
)
from processors.register import RegisterChange
from streams.settings import Settings

log = structlog.get_logger("patrol.topics")

INCIDENT_REPORTS = "incident.reports"
INCIDENT_REPORTS_DLQ = "incident.reports.dlq"
UNIT_EVENTS = "unit.events"
DISPATCH_ORDERS = "dispatch.orders"
INCIDENT_EVENTS = "incident.events"
SLA_ESCALATIONS = "sla.escalations"
# changes of the unit register by the command centre (processors/register.py), keyed by unit_id; kept for ever:
# it is the register's audit trail, and every reader of the register replays it over the file
UNIT_REGISTER = "unit.register"
# dispatcher commands from the command API (streams/gateway/commands.py), keyed by district; intake admits them
DISPATCH_COMMANDS = "dispatch.commands"

CONTRACT_TOPICS = (
    INCIDENT_REPORTS,
    INCIDENT_REPORTS_DLQ,
    UNIT_EVENTS,
    DISPATCH_ORDERS,
    INCIDENT_EVENTS,
    SLA_ESCALATIONS,
    UNIT_REGISTER,
    DISPATCH_COMMANDS,
)

# Topics that producers outside the platform write to, and so what `patrol publish` accepts.
INBOUND_TOPICS = (INCIDENT_REPORTS, UNIT_EVENTS)


def worklog_topic(settings: Settings) -> str:
    """The district work log: one ordered log per district (keyed by district), internal to the app."""
    return f"{settings.app_id}-district-worklog"


def unit_districts_topic(settings: Settings) -> str:
    """Which district each unit last logged on to (keyed by unit; compacted): unit-event intake's memory."""
    return f"{settings.app_id}-unit-districts"


def snapshots_topic(settings: Settings) -> str:
    """Snapshots of the district cores, one partition per work-log partition (compacted): streams/pipeline/snapshots.py."""
    return f"{settings.app_id}-district-snapshots"


def reporters_topic(settings: Settings) -> str:
    """Reporters' names and phones from intake to the sink (keyed by report_id): personal data's only way past
    intake, so that the work log and incident.events hold none of it."""
    return f"{settings.app_id}-reporters"


# Personal data should stay no longer than it must on the broker: a reporter is needed there only until the sink
# has written it, and 7 days covers a sink down over a long weekend (a restore's replay from the topics too).
REPORTERS_RETENTION_MS = 7 * 24 * 3600 * 1000


def internal_topics(settings: Settings) -> list[str]:
    return [worklog_topic(settings), unit_districts_topic(settings), snapshots_topic(settings),
            reporters_topic(settings)]


@dataclass(frozen=True)
class Topic:
    """One topic of the registry: its name (an internal one's after the app id: `<app id>-<name>`), the message
    model on it (None: not a JSON message of ours, e.g. the snapshots' chunks) and the field of that message that
    is its key (the partitioning: what must stay in order stays on one partition). `audited`: the sink writes it
    to PostgreSQL."""

    name: str
    model: type | None
    key_field: str
    internal: bool = False
    audited: bool = False

    def name_for(self, settings: Settings) -> str:
        return f"{settings.app_id}-{self.name}" if self.internal else self.name


# Which message goes to which topic with which key (docs/contracts.md, Topics). A model appears once, so a
# message's type says its topic.
REGISTRY: tuple[Topic, ...] = (
    Topic(INCIDENT_REPORTS, IncidentReport, "report_id"),
    Topic(UNIT_EVENTS, _UnitEventBase, "unit_id"),
    Topic(DISPATCH_ORDERS, DispatchOrder, "unit_id", audited=True),
    Topic(INCIDENT_EVENTS, IncidentEvent, "incident_id", audited=True),
    Topic(SLA_ESCALATIONS, Escalation, "incident_id", audited=True),
    # a dead letter keeps the key of the record it stands for
    Topic(INCIDENT_REPORTS_DLQ, DeadLetter, "key", audited=True),
    Topic(UNIT_REGISTER, RegisterChange, "unit_id"),
    # keyed by the district of the command's incident, which the command API resolves (not a field of it)
    Topic(DISPATCH_COMMANDS, DispatcherCommand, "district"),
    Topic("district-worklog", WorkItem, "district", internal=True),
    # the reporters reach the sink (the incident record) this way only
    Topic("reporters", ReporterRecord, "report_id", internal=True, audited=True),
    # a unit's district as text, keyed by unit (streams/pipeline/unit_districts.py)
    Topic("unit-districts", None, "unit_id", internal=True),
    # chunks of a partition's snapshot, keyed by slot (streams/pipeline/snapshots.py)
    Topic("district-snapshots", None, "slot", internal=True),
)


def key_field(topic: str) -> str:
    """The field that is the key of a message on `topic`, one of the contract's (for raw lines: `patrol publish`)."""
    for entry in REGISTRY:
        if not entry.internal and entry.name == topic:
            return entry.key_field
    raise KeyError(topic)


class Topics:
    """The registry with the names of one app id resolved."""

    def __init__(self, settings: Settings, registry: tuple[Topic, ...] = REGISTRY):
        self.by_name = {topic.name_for(settings): topic for topic in registry}
        self._name_of_model = {topic.model: name for name, topic in self.by_name.items() if topic.model is not None}

    def topic_of(self, message: Any) -> str:
        for model in type(message).__mro__:
            if model in self._name_of_model:
                return self._name_of_model[model]
        raise TypeError(f"no topic for {type(message).__name__}")

    def outgoing(self, message: Any) -> tuple[str, bytes | None, bytes]:
        """(topic, key, value) of `message`, as published: JSON without its unset fields."""
        topic = self.topic_of(message)
        key = getattr(message, self.by_name[topic].key_field)
        return topic, key.encode() if key else None, message.model_dump_json(exclude_none=True).encode()

    def model_of(self, topic: str) -> type:
        model = self.by_name[topic].model
        if model is None:
            raise TypeError(f"{topic} carries no message model")
        return model

    def audited(self) -> tuple[str, ...]:
        """The topics the sink writes to PostgreSQL."""
        return tuple(name for name, topic in self.by_name.items() if topic.audited)


@dataclass(frozen=True)
class TopicReport:
    created: list[str]
    existing: list[str]


async def ensure_topics(settings: Settings) -> TopicReport:
    """Create every topic we need; topics that already exist are left as they are."""
    names = [*CONTRACT_TOPICS, *internal_topics(settings)]
    from streams.runtime import clients  # (here: clients' tests import this module's names)

    admin = clients.admin(settings)
    await admin.start()
    try:
        present = set(await admin.list_topics())
        missing = [n for n in names if n not in present]
        created: list[str] = []
        if missing:
            response = await admin.create_topics(
                [NewTopic(n, settings.topic_partitions, settings.topic_replication, topic_configs=topic_configs(n, settings))
                 for n in missing]
            )
            for name, code, *_ in response.topic_errors:
                if code == 0:
                    created.append(name)
                elif code == TopicAuthorizationFailedError.errno:
                    # on a secured cluster only an administrator creates the contract topics (streams/operations/access.py)
                    raise RuntimeError(f"could not create topic {name}: this principal may not create it; an "
                                       "administrator creates the topics a worker finds missing (streams/operations/access.py)")
                elif code != TopicAlreadyExistsError.errno:  # another worker won the race
                    raise RuntimeError(f"could not create topic {name}: error code {code}")
        if worklog_topic(settings) in present:
            await _align(admin, worklog_topic(settings), topic_configs(worklog_topic(settings), settings))
        if created:
            await _until_led(admin, created)
        return TopicReport(created=created, existing=[n for n in names if n not in created])
    finally:
        await admin.close()


async def _until_led(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float = 30.0) -> None:
    """Until every partition of the new topics `names` has a leader: Kafka elects them a moment after it creates
    a topic, and a client that writes or reads before then is told NotLeaderForPartition (it retries, but fills
    the log with errors). A broker that takes longer is said so, and the worker goes on."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            leaderless = [topic.get("topic") for topic in await admin.describe_topics(names)
                          if topic.get("error_code") or not topic.get("partitions")
                          or any(p.get("leader", -1) < 0 for p in topic["partitions"])]
        except KafkaError:
            leaderless = list(names)
        if not leaderless:
            return
        if loop.time() > deadline:
            log.warning("new topics have no leader yet; clients will retry", topics=leaderless)
            return
        await asyncio.sleep(0.1)


async def _align(admin: AIOKafkaAdminClient, topic: str, wanted: dict[str, str]) -> None:
    """Give an existing topic the configuration we would create it with (a work log made by an earlier release
    was kept for ever); a broker that cannot change it is said so, and the worker goes on."""
    resource = ConfigResource(ConfigResourceType.TOPIC, topic)
    try:
        (response,) = await admin.describe_configs([resource])
        current = {entry[0]: entry[1] for entry in response.resources[0][4]}
        if all(current.get(name) == value for name, value in wanted.items()):
            return
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=wanted)])
        log.info("topic configuration aligned", topic=topic, configs=wanted, was={k: current.get(k) for k in wanted})
    except (KafkaError, IndexError, ValueError) as exc:
        log.warning("could not align the topic's configuration; set it on the broker", topic=topic, configs=wanted,
                    error=f"{type(exc).__name__}: {exc}"[:300])


def topic_configs(name: str, settings: Settings) -> dict[str, str]:
    if name == worklog_topic(settings):
        # a takeover needs only the entries after the newest snapshot; segments roll every few hours, since the
        # broker removes whole segments only, so that entries do not outlive the retention by a segment's age
        retention_ms = int(settings.worklog_retention_s * 1000)
        return {"retention.ms": str(retention_ms), "segment.ms": str(min(retention_ms // 4, 6 * 3600 * 1000))}
    if name == unit_districts_topic(settings):
        # of the unit map only each unit's last entry counts
        return {"cleanup.policy": "compact"}
    if name == snapshots_topic(settings):
        # of each slot only the last snapshot counts; the active segment is never compacted, so it rolls hourly
        return {"cleanup.policy": "compact", "segment.ms": str(3600 * 1000)}
    if name == UNIT_REGISTER:
        return {"retention.ms": "-1"}
    if name == reporters_topic(settings):
        return {"retention.ms": str(REPORTERS_RETENTION_MS)}
    return {}
