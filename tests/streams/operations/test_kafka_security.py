"""Security on Apache Kafka itself: SASL_SSL with SCRAM-SHA-512, one principal per service, and the ACLs of
streams/operations/access.py, on the secured embedded Kafka (EmbeddedKafka(secure=True)).

* The broker holds exactly the table's ACLs, and the table names the groups and topics the code uses.
* Each principal writes and reads what its service must, and is refused every other topic (the expectations below
  are written out from the rule, not derived from the table, so that they check the table too); consumer groups
  and topic creation likewise.
* A wrong password is refused at authentication; a client trusting another CA refuses the broker at TLS; a
  plaintext client gets nowhere.
* End to end: a real `patrol worker` and `patrol sink`, each as its own principal, dispatch a report that the
  reporter principal published, to a unit logged on by the field API's principal; the command centre reads it.

The broker tests need java and mvn (Tansu checks neither SCRAM nor ACLs: test_security.py keeps its TLS-terminator
route for Tansu). Every probe waits for the broker's answer: a refusal is the broker's error, never a silence.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import GroupAuthorizationFailedError, KafkaConnectionError, TopicAuthorizationFailedError
from pydantic import SecretStr

from streams.operations.access import ADMIN, COMMAND_CENTRE, FIELD_API, GATEWAY, REPORTER, SINK, WORKER, principals
from streams.operations.embedded import EmbeddedDatabase, spawn_child, stop_child
from streams.operations.embedded_kafka import EmbeddedKafka
from streams.sink.migrate import migrate
from streams.settings import Settings
from streams.sink.sink import Sink
from streams.runtime.topics import (
    CONTRACT_TOPICS,
    DISPATCH_COMMANDS,
    DISPATCH_ORDERS,
    INCIDENT_EVENTS,
    INCIDENT_REPORTS,
    INCIDENT_REPORTS_DLQ,
    SLA_ESCALATIONS,
    UNIT_EVENTS,
    UNIT_REGISTER,
    ensure_topics,
    internal_topics,
    reporters_topic,
)
from streams.pipeline.worker import pipeline_group
from tests.streams.conftest import (
    Field,
    TopicReader,
    WorkerProcess,
    eventually,
    fresh_district,
    message,
    send,
    session_catalogue,
    session_geography,
    session_register,
)

needs_kafka = pytest.mark.skipif(
    not (shutil.which("java") and shutil.which("mvn")),
    reason="the secured embedded Kafka needs java and mvn on the PATH (Tansu can check neither SCRAM nor ACLs)")

APP = "patrol-sec"
BASE = Settings(app_id=APP, topic_partitions=2, metrics_port=0)
OWN = internal_topics(BASE)
TOPICS = [*CONTRACT_TOPICS, *OWN]
TIMEOUT_MS = 5000  # per request: a refusal is answered at once, so this bounds only a broker that says nothing

# The rule: what each service must write and read. Everything else is refused.
MAY_WRITE = {
    WORKER: {DISPATCH_ORDERS, INCIDENT_EVENTS, SLA_ESCALATIONS, INCIDENT_REPORTS_DLQ, *OWN},
    SINK: {INCIDENT_REPORTS_DLQ},
    COMMAND_CENTRE: {UNIT_REGISTER},
    REPORTER: {INCIDENT_REPORTS},
    FIELD_API: {UNIT_EVENTS},
    GATEWAY: {INCIDENT_REPORTS, DISPATCH_COMMANDS},
}
MAY_READ = {
    WORKER: {INCIDENT_REPORTS, UNIT_EVENTS, UNIT_REGISTER, DISPATCH_COMMANDS, *OWN},
    SINK: {INCIDENT_EVENTS, DISPATCH_ORDERS, SLA_ESCALATIONS, INCIDENT_REPORTS_DLQ, reporters_topic(BASE)},
    COMMAND_CENTRE: {SLA_ESCALATIONS, INCIDENT_EVENTS, DISPATCH_ORDERS},
    REPORTER: set(),
    FIELD_API: {DISPATCH_ORDERS, UNIT_REGISTER},
    GATEWAY: set(),
}


@dataclass
class Secured:
    kafka: EmbeddedKafka
    base: Settings

    def as_(self, principal: str) -> Settings:
        return self.kafka.client_settings(self.base, principal)


def _start_secured(workdir: Path, base: Settings) -> Secured:
    kafka = EmbeddedKafka(workdir, base.cache_dir, partitions=base.topic_partitions, secure=True,
                          app_id=base.app_id).start()
    secured = Secured(kafka, base)
    try:
        asyncio.run(ensure_topics(secured.as_(ADMIN)))  # the set-up principal creates the topics
    except BaseException:
        kafka.stop()
        raise
    return secured


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    secured = _start_secured(tmp_path_factory.mktemp("secured-kafka"), BASE)
    try:
        # a record at offset 0 of every topic's partition 0, for the read probes to find
        asyncio.run(_seed(secured.as_(ADMIN)))
        yield secured
    finally:
        secured.kafka.stop()


def _client(settings: Settings) -> dict:
    return dict(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=TIMEOUT_MS,
                **settings.kafka_client_options())


async def _seed(admin: Settings) -> None:
    producer = AIOKafkaProducer(acks="all", **_client(admin))
    await producer.start()
    try:
        for topic in TOPICS:
            await producer.send_and_wait(topic, b"seed", key=b"seed", partition=0)  # a key: some are compacted
    finally:
        await producer.stop()


async def _writable(settings: Settings) -> set[str]:
    """The topics `settings` may write: a record to each; a refusal is the broker's TopicAuthorizationFailed."""
    producer = AIOKafkaProducer(acks="all", **_client(settings))
    await producer.start()
    allowed = set()
    try:
        for topic in TOPICS:
            try:
                await producer.send_and_wait(topic, b"probe", key=b"probe", partition=0)
                allowed.add(topic)
            except TopicAuthorizationFailedError:
                pass
    finally:
        await producer.stop()
    return allowed


async def _reads(settings: Settings, topic: str) -> bool:
    """Whether `settings` may read `topic`: its seed record comes back, or the broker refuses (on a topic it may
    not even describe, its metadata answer already; else the fetch)."""
    consumer = AIOKafkaConsumer(enable_auto_commit=False, fetch_max_wait_ms=50, **_client(settings))
    await consumer.start()
    try:
        # a metadata request naming the topic (no public call asks for one): refused without DESCRIBE
        await consumer._client._wait_on_metadata(topic)
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        while not (await consumer.getmany(tp, timeout_ms=200)).get(tp):
            pass  # bounded by the test's timeout; an allowed read of the seed record comes within a fetch or two
        return True
    except TopicAuthorizationFailedError:
        return False
    finally:
        await consumer.stop()


async def _commits(settings: Settings, group: str, topic: str) -> bool:
    """Whether `settings` may commit an offset of `topic` in consumer group `group`."""
    consumer = AIOKafkaConsumer(group_id=group, enable_auto_commit=False, **_client(settings))
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.commit({tp: 1})
        return True
    except GroupAuthorizationFailedError:
        return False
    finally:
        await consumer.stop()


async def _creates(settings: Settings, *names: str) -> dict[str, bool]:
    admin = AIOKafkaAdminClient(**_client(settings))
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(n, 1, 1) for n in names])
        codes = {name: code for name, code, *_ in response.topic_errors}
    finally:
        await admin.close()
    assert set(codes.values()) <= {0, TopicAuthorizationFailedError.errno}, codes
    return {name: code == 0 for name, code in codes.items()}


# --------------------------------------------------------------------------- the table


def test_the_table_names_the_groups_and_topics_the_code_uses():
    table = principals(APP)
    groups = {p: {a.name for a in acls if a.resource_type == "GROUP"} for p, acls in table.items()}
    # the district pipeline's and the sink's, named where they are used (faust, the worker's runtime, has none)
    assert groups[WORKER] == {pipeline_group(BASE)}
    assert groups[SINK] == {Sink(BASE).group_id}
    # every internal topic falls under the worker's prefix
    [prefix] = [a.name for a in table[WORKER] if a.pattern_type == "PREFIXED"]
    assert all(t.startswith(prefix) for t in OWN) and not any(t.startswith(prefix) for t in CONTRACT_TOPICS)
    assert set(table) == set(MAY_WRITE) and ADMIN not in table  # the set-up principal is a super user instead


@needs_kafka
async def test_the_broker_holds_exactly_the_tables_acls(secured):
    from streams.operations.embedded_kafka_security import acl_bindings, described_acls

    admin = AIOKafkaAdminClient(**_client(secured.as_(ADMIN)))
    await admin.start()
    try:
        assert await described_acls(admin) == acl_bindings(principals(APP))
    finally:
        await admin.close()


# --------------------------------------------------------------------------- each principal


@needs_kafka
@pytest.mark.parametrize("principal", list(MAY_WRITE))
async def test_each_principal_writes_and_reads_what_it_must_and_nothing_else(secured, principal):
    settings = secured.as_(principal)
    written = await _writable(settings)
    read = {topic for topic in TOPICS if await _reads(settings, topic)}
    assert (written, read) == (MAY_WRITE[principal], MAY_READ[principal])


@needs_kafka
async def test_a_reporter_cannot_write_dispatch_orders(secured):
    producer = AIOKafkaProducer(acks="all", **_client(secured.as_(REPORTER)))
    await producer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(DISPATCH_ORDERS, b'{"kind": "assign"}', key=b"unit-1")
        await producer.send_and_wait(INCIDENT_REPORTS, b"{}", key=b"r-1")  # and is still let in where it belongs
    finally:
        await producer.stop()


@needs_kafka
async def test_the_command_centre_reads_and_writes_only_register_changes(secured):
    settings = secured.as_(COMMAND_CENTRE)
    assert await _reads(settings, SLA_ESCALATIONS) and await _reads(settings, INCIDENT_EVENTS)
    # nothing but the unit register's changes, its audited way of changing who may do what
    assert await _writable(settings) == {UNIT_REGISTER}
    # a console of its own may keep its offsets, in a group under its prefix, and in no other
    assert await _commits(settings, f"{APP}-command-centre-desk-1", SLA_ESCALATIONS)
    assert not await _commits(settings, pipeline_group(BASE), SLA_ESCALATIONS)


@needs_kafka
async def test_consumer_groups_are_each_services_own(secured):
    worker, sink = secured.as_(WORKER), secured.as_(SINK)
    assert await _commits(worker, pipeline_group(BASE), INCIDENT_REPORTS)
    assert not await _commits(worker, APP, INCIDENT_REPORTS)  # the group faust would have joined
    assert not await _commits(worker, f"{APP}-sink", INCIDENT_REPORTS)
    assert await _commits(sink, f"{APP}-sink", INCIDENT_EVENTS)
    assert not await _commits(sink, pipeline_group(BASE), INCIDENT_EVENTS)
    assert not await _commits(secured.as_(FIELD_API), f"{APP}-command-centre-x", DISPATCH_ORDERS)


@needs_kafka
async def test_only_the_worker_creates_topics_and_only_under_its_prefix(secured):
    run = uuid.uuid4().hex[:6]
    mine, contract_like = f"{APP}-scratch-{run}", f"incident.reports.{run}"
    assert await _creates(secured.as_(WORKER), mine, contract_like) == {mine: True, contract_like: False}
    for principal in (SINK, COMMAND_CENTRE, REPORTER, FIELD_API, GATEWAY):
        name = f"{APP}-by-{principal}-{run}"
        assert await _creates(secured.as_(principal), name) == {name: False}, principal
    # nor does writing to a missing topic make it (the broker auto-creates topics only for those who may create)
    producer = AIOKafkaProducer(acks="all", **_client(secured.as_(REPORTER)))
    await producer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(f"incident.reports-{run}", b"{}")
    finally:
        await producer.stop()


# --------------------------------------------------------------------------- authentication and TLS


async def _refused(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(**_client(settings))
    try:
        with pytest.raises(KafkaConnectionError):
            await admin.start()
            await admin.list_topics()
    finally:
        await admin.close()


@needs_kafka
async def test_a_wrong_password_is_refused(secured, caplog):
    await _refused(secured.as_(REPORTER).with_overrides(kafka_sasl_password=SecretStr("not-the-password")))
    assert "SaslAuthenticationFailed" in caplog.text and "invalid credentials" in caplog.text
    caplog.clear()
    # a user the broker does not know is refused alike, with the same words (nothing tells which was wrong)
    await _refused(secured.as_(REPORTER).with_overrides(kafka_sasl_username="patrol-intruder"))
    assert "SaslAuthenticationFailed" in caplog.text and "invalid credentials" in caplog.text


@needs_kafka
async def test_a_client_trusting_another_ca_refuses_the_broker(secured, tmp_path, caplog):
    from streams.operations.embedded_kafka_security import throwaway_ca

    other = tmp_path / "other-ca.pem"
    other.write_bytes(throwaway_ca("another-throwaway-ca").pem())
    await _refused(secured.as_(REPORTER).with_overrides(kafka_ssl_cafile=other))
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text  # the client itself rejected the broker's certificate


@needs_kafka
async def test_a_plaintext_client_gets_nowhere(secured):
    await _refused(secured.as_(REPORTER).with_overrides(kafka_security_protocol="PLAINTEXT"))


# --------------------------------------------------------------------------- end to end


@pytest.fixture
def secured_site(tmp_path):
    """A secured broker of its own (the probes above write what a worker could not read) and a database."""
    base = BASE.with_overrides(app_id=f"patrol-sec-e2e-{uuid.uuid4().hex[:6]}", sink_in_worker=False,
                               geography=session_geography(tmp_path / "geography.geojson"),
                               catalogue=session_catalogue(tmp_path / "catalogue.yaml"),
                               unit_register=session_register(tmp_path / "units.yaml"))
    database = EmbeddedDatabase(tmp_path).start()
    try:
        asyncio.run(migrate(database.url))
        secured = _start_secured(tmp_path / "kafka", base.with_overrides(database_url=database.url))
        try:
            yield secured
        finally:
            secured.kafka.stop()
    finally:
        database.stop()


@needs_kafka
async def test_a_worker_and_a_sink_as_their_own_principals_dispatch_a_reporters_report(secured_site, tmp_path):
    import asyncpg

    site = secured_site
    worker = WorkerProcess(site.as_(WORKER), tmp_path / "worker.log").start()
    sink = spawn_child([sys.executable, "-m", "streams.cli", "sink"], log=tmp_path / "sink.log",
                       death_signal=signal.SIGTERM, env={**os.environ, **site.as_(SINK).to_env()})
    db = await asyncpg.connect(site.base.database_url)
    try:
        district = fresh_district()
        f = Field(district)
        unit = f"{f.run}-P1"
        field_unit, reporter = site.as_(FIELD_API), site.as_(REPORTER)
        # the field unit logs on; the worker admits it, the sink records the barrier's dead letters
        await f.log_on_all(field_unit, db, [(unit, "police", district.point(east_m=200))])
        report_id = f"{f.run}-fight"
        doc = {"schema_version": 1, "report_id": report_id, "source": "hotline", "category": "PS-FIGHT",
               "lat": district.point()[0], "lon": district.point()[1], "reported_at": "2026-11-25T07:59:00Z",
               "reporter": {"name": "Wang Fang", "phone": "13800138000"}}
        await send(reporter, [message(INCIDENT_REPORTS, report_id, doc)])

        async with TopicReader(field_unit, DISPATCH_ORDERS, {unit}) as orders:
            [order] = await orders.wait_for(lambda r: len(r) >= 1)
        assert (order["kind"], order["category"]) == ("assign", "PS-FIGHT")
        async with TopicReader(site.as_(COMMAND_CENTRE), INCIDENT_EVENTS, {order["incident_id"]}) as events:
            seen = await events.wait_for(lambda r: {"created", "dispatched"} <= {e["type"] for e in r})
        assert next(e for e in seen if e["type"] == "created")["data"]["report_id"] == report_id

        # the sink wrote the incident and its reporter (who came by the worker's reporters topic)
        async def recorded():
            return await db.fetchrow("SELECT reporter FROM incidents WHERE report_id = $1 AND reporter IS NOT NULL",
                                     report_id)

        row = await eventually(recorded)
        assert json.loads(row["reporter"])["phone"] == "13800138000"
        worker.assert_alive()
        assert sink.poll() is None, (tmp_path / "sink.log").read_text()[-3000:]
    finally:
        await db.close()
        stop_child(sink, signal.SIGTERM, timeout=30)
        worker.stop()
    for log in (tmp_path / "worker.log", tmp_path / "sink.log"):
        assert "AuthorizationFailed" not in log.read_text(), f"{log.name}:\n{log.read_text()[-3000:]}"
