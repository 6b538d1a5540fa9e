"""Who may do what on the Kafka cluster: one principal per service and the ACLs it holds, as plain data.

This table is the one statement of the rule. The secured embedded Kafka (streams/operations/embedded_kafka.py, `secure=True`)
creates exactly these ACLs and a SCRAM-SHA-512 user per principal; the Kubernetes KafkaUsers
(deploy/kubernetes/22-users.yaml, one per principal, named as here) and the compose `topics` job say the same, which
tests/deploy checks against `principals()`.

How to read an entry: `Acl(resource_type, name, pattern_type, operations)` allows the principal `User:<name of the
principal>` those `operations` on the resources of `resource_type` whose name is `name` (pattern_type "LITERAL") or
starts with `name` ("PREFIXED"), from any host. The names are Kafka's own (ResourceType, PatternType, AclOperation:
Strimzi's KafkaUser spells them topic/group, literal/prefix, Read/Write/...). Everything not allowed is refused
(the broker runs StandardAuthorizer with allow.everyone.if.no.acl.found false). DESCRIBE is listed wherever it is
needed, although Kafka implies it from READ and WRITE, so that the table reads without knowing that rule.

What each service does on Kafka, read off the code:

- **worker** (`patrol worker`, streams/pipeline/worker.py): intake reads `incident.reports`, `unit.events` and
  `unit.register` (the unit register's changes); the district
  core writes `dispatch.orders`, `incident.events`, `sla.escalations` and dead letters to `incident.reports.dlq`.
  Its own topics all start with `<app id>-`: the district work log, the unit map, the district snapshots and the
  reporters (streams/runtime/topics.py); it reads and writes them, creates them when missing (ensure_topics at
  start-up), and reads and aligns their configuration (topics._align). Its one consumer group is the district
  pipeline's (`<app id>-pipeline`, whose committed offsets recovery reads): faust, its runtime, starts no Kafka
  client (docs/adr/0001-faust-runtime.md). Consumer lag is measured from its own consumers' positions: no further
  right.
- **sink** (`patrol sink`, streams/sink/sink.py): reads the audit topics and `<app id>-reporters` in its group
  `<app id>-sink`, and dead-letters a record it cannot write to `incident.reports.dlq`.
- **command centre**: reads the district core's outputs and writes `unit.register` (audited changes of the unit
  register); its consoles may read in consumer groups named `<app id>-command-centre…`.
- **reporter** (hotline and sensor systems, `patrol publish` of reports): may only write `incident.reports`.
- **field API** (`patrol field`, streams/field_api/): the only writer of `unit.events`, each event in the name of
  the unit whose device token it holds; reads `dispatch.orders` (to push each unit its own orders) and
  `unit.register`; no group. Field devices (the web app, `patrol unit`) are its HTTP clients and hold no Kafka
  credential.
- **gateway** (streams/gateway/): writes `incident.reports`.
- **field unit** (`patrol unit`, streams/field_unit/): writes `unit.events`, reads `dispatch.orders`, and reads
  `unit.events` back to restore its progress after a restart (so it sees other units' events too); no group.
- **gateway** (streams/gateway/): writes `incident.reports`, and `dispatch.commands` (its command API, which the
  worker's intake reads).

Who creates topics: the contract topics (and, in production, ours too) are created by an administrator — on the
embedded broker by ADMIN, a super user that only sets up (SCRAM users, these ACLs, ensure_topics); in Kubernetes by
the Strimzi topic operator (deploy/kubernetes/21-topics.yaml). The worker may create only topics under its own
prefix (ensure_topics makes a missing internal topic itself). The worker runs ensure_topics at start-up too: on a
cluster set up this way it finds every contract topic present, and needs no right to create them.

The worker's entry assumes the sink runs as its own process and principal (PATROL_SINK_IN_WORKER=false, as in
deploy/kubernetes/40-workers.yaml); a worker that runs the sink in itself needs the sink's ACLs as well.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.runtime.topics import (
    DISPATCH_COMMANDS,
    DISPATCH_ORDERS,
    INCIDENT_EVENTS,
    INCIDENT_REPORTS,
    INCIDENT_REPORTS_DLQ,
    SLA_ESCALATIONS,
    UNIT_EVENTS,
    UNIT_REGISTER,
)

# The set-up principal of the embedded broker: a super user (super.users), so it holds no ACLs of its own.
ADMIN = "admin"

WORKER = "worker"
SINK = "sink"
COMMAND_CENTRE = "command-centre"
REPORTER = "reporter"
FIELD_API = "field-api"
GATEWAY = "gateway"


@dataclass(frozen=True)
class Acl:
    """Allow `operations` on the resources of `resource_type` ("TOPIC", "GROUP") named `name` ("LITERAL") or
    starting with `name` ("PREFIXED")."""

    resource_type: str
    name: str
    pattern_type: str
    operations: tuple[str, ...]


def _topics(operations: tuple[str, ...], *names: str) -> tuple[Acl, ...]:
    return tuple(Acl("TOPIC", name, "LITERAL", operations) for name in names)


READ = ("READ", "DESCRIBE")
WRITE = ("WRITE", "DESCRIBE")


def principals(app_id: str) -> dict[str, tuple[Acl, ...]]:
    """Every service's principal (its SCRAM user name) and the ACLs it holds, for the app id `app_id`."""
    own = f"{app_id}-"
    return {
        WORKER: (
            *_topics(READ, INCIDENT_REPORTS, UNIT_EVENTS, UNIT_REGISTER, DISPATCH_COMMANDS),
            *_topics(WRITE, DISPATCH_ORDERS, INCIDENT_EVENTS, SLA_ESCALATIONS, INCIDENT_REPORTS_DLQ),
            Acl("TOPIC", own, "PREFIXED",
                ("CREATE", "READ", "WRITE", "DESCRIBE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS")),
            Acl("GROUP", f"{app_id}-pipeline", "LITERAL", READ),
        ),
        SINK: (
            *_topics(READ, INCIDENT_EVENTS, DISPATCH_ORDERS, SLA_ESCALATIONS, f"{app_id}-reporters"),
            *_topics(("READ", "WRITE", "DESCRIBE"), INCIDENT_REPORTS_DLQ),
            Acl("GROUP", f"{app_id}-sink", "LITERAL", READ),
        ),
        COMMAND_CENTRE: (
            *_topics(READ, SLA_ESCALATIONS, INCIDENT_EVENTS, DISPATCH_ORDERS),
            *_topics(WRITE, UNIT_REGISTER),
            Acl("GROUP", f"{app_id}-command-centre", "PREFIXED", READ),
        ),
        REPORTER: _topics(WRITE, INCIDENT_REPORTS),
        FIELD_API: (
            *_topics(WRITE, UNIT_EVENTS),
            *_topics(READ, DISPATCH_ORDERS, UNIT_REGISTER),
        ),
        GATEWAY: _topics(WRITE, INCIDENT_REPORTS, DISPATCH_COMMANDS),
    }
