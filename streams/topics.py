"""The topic catalogue: every contract topic and our internal ones (district work log, unit map, reporters), created
idempotently at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.settings import Settings

INCIDENT_REPORTS = "incident.reports"
INCIDENT_REPORTS_DLQ = "incident.reports.dlq"
UNIT_EVENTS = "unit.events"
DISPATCH_ORDERS = "dispatch.orders"
INCIDENT_EVENTS = "incident.events"
SLA_ESCALATIONS = "sla.escalations"

CONTRACT_TOPICS = (
    INCIDENT_REPORTS,
    INCIDENT_REPORTS_DLQ,
    UNIT_EVENTS,
    DISPATCH_ORDERS,
    INCIDENT_EVENTS,
    SLA_ESCALATIONS,
)

# Topics that producers outside the platform write to, and so what `patrol publish` accepts.
INBOUND_TOPICS = (INCIDENT_REPORTS, UNIT_EVENTS)


def worklog_topic(settings: Settings) -> str:
    """The district work log: one ordered log per district (keyed by district), internal to the app."""
    return f"{settings.app_id}-district-worklog"


def unit_districts_topic(settings: Settings) -> str:
    """Which district each unit last logged on to (keyed by unit; compacted): unit-event intake's memory."""
    return f"{settings.app_id}-unit-districts"


def reporters_topic(settings: Settings) -> str:
    """Reporters' names and phones from intake to the sink (keyed by report_id): personal data's only way past
    intake, so that the work log and incident.events hold none of it."""
    return f"{settings.app_id}-reporters"


# Personal data should stay no longer than it must on the broker: a reporter is needed there only until the sink
# has written it, and 7 days covers a sink down over a long weekend (a restore's replay from the topics too).
REPORTERS_RETENTION_MS = 7 * 24 * 3600 * 1000


def internal_topics(settings: Settings) -> list[str]:
    return [worklog_topic(settings), unit_districts_topic(settings), reporters_topic(settings)]


@dataclass(frozen=True)
class TopicReport:
    created: list[str]
    existing: list[str]


async def ensure_topics(settings: Settings) -> TopicReport:
    """Create every topic we need; topics that already exist are left as they are."""
    names = [*CONTRACT_TOPICS, *internal_topics(settings)]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, **settings.kafka_client_options())
    await admin.start()
    try:
        present = set(await admin.list_topics())
        missing = [n for n in names if n not in present]
        created: list[str] = []
        if missing:
            response = await admin.create_topics(
                [NewTopic(n, settings.topic_partitions, settings.topic_replication, topic_configs=_configs(n, settings))
                 for n in missing]
            )
            for name, code, *_ in response.topic_errors:
                if code == 0:
                    created.append(name)
                elif code != TopicAlreadyExistsError.errno:  # another worker won the race
                    raise RuntimeError(f"could not create topic {name}: error code {code}")
        return TopicReport(created=created, existing=[n for n in names if n not in created])
    finally:
        await admin.close()


def _configs(name: str, settings: Settings) -> dict[str, str]:
    # the district cores rebuild their state by replaying the work log from its start,
    # so the broker must never expire its entries; of the unit map only each unit's last entry counts
    if name == worklog_topic(settings):
        return {"retention.ms": "-1"}
    if name == unit_districts_topic(settings):
        return {"cleanup.policy": "compact"}
    if name == reporters_topic(settings):
        return {"retention.ms": str(REPORTERS_RETENTION_MS)}
    return {}
