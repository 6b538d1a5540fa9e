"""Who may do what on the Kafka cluster, and who logs in as whom, in the code and in both deployments.

- The table of principals and their ACLs (streams/operations/access.py) grants each process what its code reads, writes and
  creates, and no more.
- Compose: the `topics` job grants each principal exactly its ACLs (kafka-acls.sh); Kafka speaks only SASL_SSL with
  SCRAM-SHA-512 and authorizes with ACLs; kafka-setup makes a SCRAM user per principal (and the CA and the broker's
  certificate, run here with keytool), and each service logs in as its own.
- Kubernetes: every principal is a KafkaUser with exactly its ACLs; each Deployment logs in as its own principal
  and trusts the cluster CA.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from streams.runtime.topics import (
    CONTRACT_TOPICS,
    DISPATCH_COMMANDS,
    DISPATCH_ORDERS,
    INBOUND_TOPICS,
    INCIDENT_EVENTS,
    INCIDENT_REPORTS,
    INCIDENT_REPORTS_DLQ,
    SLA_ESCALATIONS,
    UNIT_EVENTS,
    UNIT_REGISTER,
    Topics,
    internal_topics,
    reporters_topic,
)
from streams.pipeline.worker import pipeline_group
from tests.deploy.manifests import (
    ACLS,
    APP,
    COMPOSE_ONLY_ACLS,
    DEPLOY,
    PATROL_SERVICES,
    Acl,
    _container,
    _mount_target,
    _of_kind,
    _one,
    allowed,
    interpolate,
)


def test_the_acls_grant_each_process_what_its_code_does_and_no_more():
    internal = internal_topics(APP)
    worker, sink = ACLS["worker"], ACLS["sink"]
    for topic in INBOUND_TOPICS:
        assert allowed(worker, "topic", topic, "Read") and not allowed(worker, "topic", topic, "Write"), topic
    for topic in (INCIDENT_EVENTS, DISPATCH_ORDERS, SLA_ESCALATIONS, INCIDENT_REPORTS_DLQ):
        assert allowed(worker, "topic", topic, "Write") and not allowed(worker, "topic", topic, "Read"), topic
    for topic in internal:
        assert all(allowed(worker, "topic", topic, op) for op in ("Read", "Write", "Create", "Describe")), topic
    assert allowed(worker, "group", pipeline_group(APP), "Read")
    # faust, the worker's runtime, joins no group of its own (docs/adr/0001-faust-runtime.md)
    assert not allowed(worker, "group", APP.app_id, "Read")
    for topic in Topics(APP).audited():
        assert allowed(sink, "topic", topic, "Read"), topic
    assert allowed(sink, "group", f"{APP.app_id}-sink", "Read") and not allowed(worker, "group", f"{APP.app_id}-sink", "Read")
    # the reporters' names and phones: only the worker, which writes them, and the sink, which stores them
    assert {p for p, acls in ACLS.items() if allowed(acls, "topic", reporters_topic(APP), "Read")} == {"worker", "sink"}
    # what writes where, outside the worker and the sink
    writes = {p: {name for kind, name, _, op in acls if kind == "topic" and op == "Write"} for p, acls in ACLS.items()}
    # unit.events: the field API only (the simulator of the compose stack plays field units)
    assert writes["field-api"] == {UNIT_EVENTS} and writes["command-centre"] == {UNIT_REGISTER}
    assert {p for p, acls in ACLS.items() if allowed(acls, "topic", UNIT_EVENTS, "Write")} == {"field-api"}
    assert allowed(ACLS["field-api"], "topic", DISPATCH_ORDERS, "Read")
    assert allowed(ACLS["field-api"], "topic", UNIT_REGISTER, "Read") and allowed(worker, "topic", UNIT_REGISTER, "Read")
    assert writes["reporter"] == {INCIDENT_REPORTS}
    # the gateway's command API publishes dispatcher commands, which only the worker's intake reads
    assert writes["gateway"] == {INCIDENT_REPORTS, DISPATCH_COMMANDS}
    assert {p for p, acls in ACLS.items() if allowed(acls, "topic", DISPATCH_COMMANDS, "Read")} == {"worker"}
    # nobody administers the cluster, and every named topic exists
    topics = {*CONTRACT_TOPICS, *internal}
    for principal, acls in {**ACLS, **COMPOSE_ONLY_ACLS}.items():
        for kind, name, pattern, operation in acls:
            assert kind in ("topic", "group") and pattern in ("literal", "prefix") and operation != "All", (principal, name)
            if kind == "topic":
                assert name in topics if pattern == "literal" else name == f"{APP.app_id}-", (principal, name)


# ----------------------------------------------------------------------------- compose

# which principal each compose service logs in as (migrate needs no Kafka)
COMPOSE_PRINCIPALS = {"worker-1": "worker", "worker-2": "worker", "sink": "sink", "gateway": "gateway",
                      "field-api": "field-api", "simulator": "simulator"}
_ALLOW = re.compile(r"^\s*allow (\S+) (topic|group) (\S+) (literal|prefixed) ((?:\w+ ?)+)$", re.M)


def _password_knob(principal: str) -> str:
    return f"KAFKA_{principal.upper().replace('-', '_')}_PASSWORD"


def test_compose_grants_each_principal_exactly_its_acls(compose):
    script = "\n".join(interpolate(compose, {})["services"]["topics"]["command"])
    granted: dict[str, set[Acl]] = {}
    for principal, kind, name, pattern, operations in _ALLOW.findall(script):
        granted.setdefault(principal, set()).update(
            (kind, name, "prefix" if pattern == "prefixed" else pattern, op) for op in operations.split())
    assert granted == {**ACLS, **COMPOSE_ONLY_ACLS}
    # `allow` adds allow rules with kafka-acls.sh, as the super user
    assert re.search(r'kafka-acls\.sh \$admin --add --allow-principal "User:\$principal"', script)
    assert re.search(r'admin="--bootstrap-server kafka:9092 --command-config /etc/kafka/secrets/admin\.properties"', script)


def test_compose_kafka_speaks_only_sasl_ssl_with_scram_and_authorizes_with_acls(compose):
    kafka = interpolate(compose, {})["services"]["kafka"]["environment"]
    listeners = dict(l.split("://")[::-1] for l in kafka["KAFKA_LISTENERS"].split(","))  # address -> name
    protocols = dict(m.split(":") for m in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    controller = kafka["KAFKA_CONTROLLER_LISTENER_NAMES"]
    # clients: SASL_SSL only; the plaintext controller listener on the container's loopback only
    assert {protocols[name] for name in listeners.values() if name != controller} == {"SASL_SSL"}
    assert {a for a, name in listeners.items() if name == controller} == {"localhost:9093"}
    assert kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@localhost:9093"
    assert kafka["KAFKA_ADVERTISED_LISTENERS"] == "SASL_SSL://kafka:9092"
    assert kafka["KAFKA_SASL_ENABLED_MECHANISMS"] == kafka["KAFKA_SASL_MECHANISM_INTER_BROKER_PROTOCOL"] == "SCRAM-SHA-512"
    assert kafka["KAFKA_AUTHORIZER_CLASS_NAME"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert set(kafka["KAFKA_SUPER_USERS"].split(";")) == {"User:admin", "User:ANONYMOUS"}
    assert kafka["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert "admin" not in ACLS and "ANONYMOUS" not in ACLS


def test_compose_makes_a_scram_user_per_principal_and_each_service_logs_in_as_its_own(compose):
    principals = {*ACLS, *COMPOSE_ONLY_ACLS}
    knobs = {_password_knob(p): f"pw-of-{p}" for p in [*principals, "admin"]}
    services = interpolate(compose, knobs)["services"]
    setup = services["kafka-setup"]
    assert set(setup["environment"]["SCRAM_USERS"].split()) == principals
    assert setup["environment"]["ADMIN_PASSWORD"] == "pw-of-admin"
    for principal in principals:
        assert setup["environment"][f"{principal.upper().replace('-', '_')}_PASSWORD"] == f"pw-of-{principal}"
    # the storage is formatted with them (KRaft), by the setup script compose mounts
    script = (DEPLOY / "compose" / "kafka-setup.sh").read_text()
    assert _mount_target(setup, "compose/kafka-setup.sh") == setup["entrypoint"][-1]
    assert '--add-scram "SCRAM-SHA-512=[name=$user,password=$password]"' in script
    assert services["kafka"]["depends_on"]["kafka-setup"] == {"condition": "service_completed_successfully"}
    assert set(PATROL_SERVICES) == {*COMPOSE_PRINCIPALS, "migrate"}
    for name, principal in COMPOSE_PRINCIPALS.items():
        env = services[name]["environment"]
        assert (env["PATROL_KAFKA_SASL_USERNAME"], env["PATROL_KAFKA_SASL_PASSWORD"]) == (principal, f"pw-of-{principal}")
        assert (env["PATROL_KAFKA_SECURITY_PROTOCOL"], env["PATROL_KAFKA_SASL_MECHANISM"]) == ("SASL_SSL", "SCRAM-SHA-512")
        assert env["PATROL_KAFKA_BOOTSTRAP"] == "kafka:9092", name
        # the CA's certificate, from the volume kafka-setup puts it in, read-only
        assert f"kafka-ca:{Path(env['PATROL_KAFKA_SSL_CAFILE']).parent}:ro" in services[name]["volumes"], name
    assert "PATROL_KAFKA_SASL_USERNAME" not in services["migrate"]["environment"]
    assert "kafka-ca:/etc/kafka/ca" in setup["volumes"] and "CA=${CA:-/etc/kafka/ca}" in script
    # the broker's keys, the CA's key and the admin login reach the broker, the setup and the topics job only
    holders = {n for n, s in services.items() if any(str(v).startswith("kafka-secrets:") for v in s.get("volumes", []))}
    assert holders == {"kafka-setup", "kafka", "topics"}


@pytest.mark.skipif(shutil.which("keytool") is None, reason="no keytool")
def test_the_compose_kafka_setup_makes_a_ca_a_broker_certificate_and_the_scram_users(compose, tmp_path):
    """compose/kafka-setup.sh itself, with keytool and a stand-in for kafka-storage.sh that records its arguments."""
    setup = interpolate(compose, {})["services"]["kafka-setup"]
    bin_dir = tmp_path / "kafka" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "kafka-storage.sh").write_text(
        '#!/bin/sh\nprintf "%s\\n" "$@" > "$KAFKA_LOG_DIRS/format-args"\ntouch "$KAFKA_LOG_DIRS/meta.properties"\n')
    (bin_dir / "kafka-storage.sh").chmod(0o755)
    data = tmp_path / "data"
    data.mkdir()
    env = {**{k: str(v) for k, v in setup["environment"].items()}, "PATH": os.environ["PATH"],
           "SECRETS": str(tmp_path / "secrets"), "CA": str(tmp_path / "ca"), "KAFKA_LOG_DIRS": str(data),
           "KAFKA_HOME": str(tmp_path / "kafka"), "OWNER": str(os.getuid())}
    (tmp_path / "secrets").mkdir()
    script = str(DEPLOY / "compose" / "kafka-setup.sh")
    for _ in range(2):  # the second run changes nothing
        done = subprocess.run(["sh", script], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    arguments = (data / "format-args").read_text().split("\n")
    scram = {arguments[i + 1] for i, a in enumerate(arguments) if a == "--add-scram"}
    assert scram == {f"SCRAM-SHA-512=[name={p},password={setup['environment'][p.upper().replace('-', '_') + '_PASSWORD']}]"
                     for p in setup["environment"]["SCRAM_USERS"].split()} | {"SCRAM-SHA-512=[name=admin,password=admin-secret]"}
    assert (tmp_path / "ca" / "ca.crt").read_text().startswith("-----BEGIN CERTIFICATE-----")
    password = (tmp_path / "secrets" / "keystore-creds").read_text()
    listing = subprocess.run(["keytool", "-list", "-v", "-keystore", str(tmp_path / "secrets" / "kafka.p12"),
                              "-storepass", password], capture_output=True, text=True, timeout=60).stdout
    assert "DNSName: kafka" in listing and "DNSName: localhost" in listing
    assert "Issuer: CN=patrol-dispatch compose CA" in listing
    assert 'username="admin" password="admin-secret"' in (tmp_path / "secrets" / "admin.properties").read_text()


# ----------------------------------------------------------------------------- kubernetes

def _kafka_user_acls(user: dict) -> set[Acl]:
    acls = user["spec"]["authorization"]["acls"]
    assert all(acl.get("type", "allow") == "allow" and acl.get("host", "*") == "*" for acl in acls)
    return {(acl["resource"]["type"], acl["resource"]["name"], acl["resource"].get("patternType", "literal"), op)
            for acl in acls for op in acl["operations"]}


def test_every_principal_is_a_kafka_user_with_exactly_its_acls():
    kafka = _one("Kafka")
    users = {u["metadata"]["name"]: u for u in _of_kind("KafkaUser")}
    assert set(users) == set(ACLS)
    for name, user in users.items():
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"], name
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}, name
        assert user["spec"]["authorization"]["type"] == "simple", name
        assert _kafka_user_acls(user) == ACLS[name], name


# which principal each Deployment logs in as
DEPLOYMENT_PRINCIPALS = {"patrol-worker": "worker", "patrol-sink": "sink", "patrol-gateway": "gateway",
                         "patrol-field-api": "field-api"}


def test_each_deployment_logs_in_as_its_own_principal_and_trusts_the_cluster_ca():
    kafka_name = _one("Kafka")["metadata"]["name"]
    cafile = Path(_one("ConfigMap", "patrol-config")["data"]["PATROL_KAFKA_SSL_CAFILE"])
    assert {d["metadata"]["name"] for d in _of_kind("Deployment")} == set(DEPLOYMENT_PRINCIPALS)
    for deployment, principal in DEPLOYMENT_PRINCIPALS.items():
        pod = _one("Deployment", deployment)["spec"]["template"]["spec"]
        container = _container(_one("Deployment", deployment))
        env = {e["name"]: e for e in container["env"]}
        assert env["PATROL_KAFKA_SASL_USERNAME"]["value"] == principal, deployment
        # the Secret the User Operator writes for the KafkaUser: its name, key `password`
        assert env["PATROL_KAFKA_SASL_PASSWORD"]["valueFrom"] == {
            "secretKeyRef": {"name": principal, "key": "password"}}, deployment
        [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == str(cafile.parent)]
        assert mount.get("readOnly") is True, deployment
        [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        # the cluster CA's certificate, in the Secret Strimzi keeps it in
        assert volume["secret"]["secretName"] == f"{kafka_name}-cluster-ca-cert", deployment
        assert volume["secret"]["items"] == [{"key": "ca.crt", "path": cafile.name}], deployment
    migrate = _container(_one("Job"))
    assert "env" not in migrate, "the migration needs no Kafka credentials"
